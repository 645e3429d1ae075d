// api.cc — the op-level extern "C" functions of sieve.h: the CPU reference of every layer,
// one op at a time, for the tests and for stages that need a single op without a model
// (the model-level functions are the core's: core/api.cc; weight quantization, which takes a
// device, is core/quant_api.cc).
//
// Every function: checks its arguments (one clear sentence per problem), runs the op on
// the default thread count inside guarded(), and returns a status with the message in the
// calling thread's sieve_last_error(). Nothing here exits, aborts or prints.
#include <cmath>
#include <random>
#include <vector>

#include "backend.h"
#include "core/seams.h"
#include "gemm.h"
#include "grad_hook.h"
#include "ops.h"
#include "sparsity.h"
#include "transform.h"
#include "update_rule.h"

using namespace sieve;
using namespace sieve::cpu;

namespace {

constexpr int64_t kMaxSize = int64_t(1) << 30;

void check_sizes(std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes) SIEVE_CHECK(s >= 1 && s <= kMaxSize, "sizes must be in [1, 2^30], got %lld", (long long)s);
}

void check_heads(int64_t C, int64_t NH, bool rope) {
  SIEVE_CHECK(C % NH == 0, "NH (%lld) must divide C (%lld)", (long long)NH, (long long)C);
  if (rope) SIEVE_CHECK((C / NH) % 2 == 0, "head size C/NH = %lld must be even for RoPE", (long long)(C / NH));
}

// A matrix whose 2:4 groups run along K (and along R too when both).
void check_groups(int64_t R, int64_t K, bool both) {
  check_sizes({R, K});
  SIEVE_CHECK(R <= kMaxSize / K, "R*K = %lld*%lld is too large (at most 2^30 elements)", (long long)R, (long long)K);
  SIEVE_CHECK(K % 4 == 0, "2:4 groups run along K, so K must be a multiple of 4: got a [%lld, %lld] matrix",
              (long long)R, (long long)K);
  if (both)
    SIEVE_CHECK(R % 4 == 0, "a transposable 2:4 mask groups rows too, so R must be a multiple of 4: got a [%lld, %lld] matrix",
                (long long)R, (long long)K);
}

// The flat transforms: none, mask, sste (groups of 4 consecutive elements).
void check_flat_transform(int32_t kind, const float* params, int64_t n_params, const float* mask, int64_t n) {
  check_seam_params(params, n_params);
  transform_validate(kind, params, n_params, "(op)");
  SIEVE_CHECK(kind != SIEVE_TRANSFORM_SCALE,
              "the scale transform needs the weight's shape and scales: use sieve_weight_scale_forward / _backward");
  if (kind == SIEVE_TRANSFORM_SSTE)
    SIEVE_CHECK(n % 4 == 0, "the sste transform works on groups of 4: n = %lld is not a multiple of 4", (long long)n);
  if (transform_uses_mask(kind)) check_ptr(mask, "mask");
}

// CAST's weight scales: SG segments of each row of K.
void check_scale(int64_t R, int64_t K, int64_t SG) {
  check_sizes({R, K, SG});
  SIEVE_CHECK(R <= kMaxSize / K, "R*K = %lld*%lld is too large (at most 2^30 elements)", (long long)R, (long long)K);
  SIEVE_CHECK(K % SG == 0, "SG = %lld segments must divide K = %lld", (long long)SG, (long long)K);
}

void check_adam(float lr, float beta1, float beta2, float eps, int64_t t) {
  SIEVE_CHECK(std::isfinite(lr) && lr >= 0.0f, "lr must be a finite number >= 0, got %g", (double)lr);
  SIEVE_CHECK(beta1 >= 0.0f && beta1 < 1.0f, "beta1 must be in [0, 1), got %g", (double)beta1);
  SIEVE_CHECK(beta2 >= 0.0f && beta2 < 1.0f, "beta2 must be in [0, 1), got %g", (double)beta2);
  SIEVE_CHECK(std::isfinite(eps) && eps > 0.0f, "eps must be a finite number > 0, got %g", (double)eps);
  SIEVE_CHECK(t >= 1, "t must be >= 1 (the 1-based optimizer step), got %lld", (long long)t);
}

void check_loss_args(const float* teacher, float alpha, float tau) {
  if (!teacher) return;
  SIEVE_CHECK(alpha >= 0.0f && alpha <= 1.0f, "alpha must be in [0, 1], got %g", (double)alpha);
  SIEVE_CHECK(std::isfinite(tau) && tau > 0.0f, "tau must be a finite number > 0, got %g", (double)tau);
}

}  // namespace

extern "C" {

int sieve_set_default_threads(int32_t threads) {
  return guarded([&] {
    SIEVE_CHECK(threads >= 1 && threads <= 1024, "threads must be in [1, 1024], got %d", (int)threads);
    set_default_threads(threads);
  });
}

int sieve_bench_sgemm(double* seconds, int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K,
                      int32_t reps, int32_t threads, int32_t engine) {
  return guarded([&] {
    check_ptr(seconds, "seconds");
    SIEVE_CHECK(M >= 1 && N >= 1 && K >= 1 && M <= 65536 && N <= 65536 && K <= 65536,
                "M, N, K must be in [1, 65536], got %lld, %lld, %lld", (long long)M, (long long)N, (long long)K);
    SIEVE_CHECK(reps >= 1 && reps <= 100000, "reps must be in [1, 100000], got %d", (int)reps);
    SIEVE_CHECK(threads >= 1 && threads <= 1024, "threads must be in [1, 1024], got %d", (int)threads);
    SIEVE_CHECK(engine == 0 || engine == 1, "engine must be 0 (BLAS threading) or 1 (engine split), got %d",
                (int)engine);
    std::vector<float> A(M * K), Bm(K * N), Cm(M * N, 0.0f);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : A) x = u(rng);
    for (float& x : Bm) x = u(rng);
    const int64_t lda = trans_a ? M : K, ldb = trans_b ? K : N;
    ThreadScope scope(threads);
    auto run = [&] {
      if (engine == 0)
        sgemm_library(trans_a, trans_b, M, N, K, 1.0f, A.data(), lda, Bm.data(), ldb, 0.0f, Cm.data(), N, threads);
      else
        sgemm(trans_a, trans_b, M, N, K, 1.0f, A.data(), lda, Bm.data(), ldb, 0.0f, Cm.data(), N, nullptr);
    };
    run();
    const double t0 = now_seconds();
    for (int32_t r = 0; r < reps; r++) run();
    *seconds = (now_seconds() - t0) / reps;
  });
}

// ---------------------------------------------------------------- op-level kernels

#define SIEVE_OP_SCOPE ThreadScope scope(default_threads())

int sieve_matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t IC,
                         int64_t OC) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(inp, "inp"), check_ptr(weight, "weight");
    check_sizes({N, IC, OC});
    SIEVE_OP_SCOPE;
    matmul_forward(out, inp, weight, bias, N, IC, OC, false, nullptr);
  });
}

int sieve_matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, int64_t N, int64_t IC, int64_t OC) {
  return guarded([&] {
    check_ptr(dweight, "dweight"), check_ptr(dout, "dout"), check_ptr(inp, "inp"), check_ptr(weight, "weight");
    check_sizes({N, IC, OC});
    SIEVE_OP_SCOPE;
    matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, nullptr);
  });
}

int sieve_layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, float eps, int64_t N, int64_t C) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(mean, "mean"), check_ptr(rstd, "rstd"), check_ptr(inp, "inp");
    check_ptr(weight, "weight"), check_ptr(bias, "bias");
    check_sizes({N, C});
    SIEVE_OP_SCOPE;
    layernorm_forward(out, mean, rstd, inp, weight, bias, eps, N, C);
  });
}

int sieve_layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* mean, const float* rstd, const float* weight, int64_t N, int64_t C) {
  return guarded([&] {
    check_ptr(dinp, "dinp"), check_ptr(dweight, "dweight"), check_ptr(dbias, "dbias"), check_ptr(dout, "dout");
    check_ptr(inp, "inp"), check_ptr(mean, "mean"), check_ptr(rstd, "rstd"), check_ptr(weight, "weight");
    check_sizes({N, C});
    SIEVE_OP_SCOPE;
    layernorm_backward(dinp, dweight, dbias, dout, inp, mean, rstd, weight, N, C);
  });
}

int sieve_rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, float eps, int64_t N,
                          int64_t C) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(rstd, "rstd"), check_ptr(inp, "inp"), check_ptr(weight, "weight");
    check_sizes({N, C});
    SIEVE_OP_SCOPE;
    rmsnorm_forward(out, rstd, inp, weight, eps, N, C);
  });
}

int sieve_rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* rstd,
                           const float* weight, int64_t N, int64_t C) {
  return guarded([&] {
    check_ptr(dinp, "dinp"), check_ptr(dweight, "dweight"), check_ptr(dout, "dout"), check_ptr(inp, "inp");
    check_ptr(rstd, "rstd"), check_ptr(weight, "weight");
    check_sizes({N, C});
    SIEVE_OP_SCOPE;
    rmsnorm_backward(dinp, dweight, dout, inp, rstd, weight, N, C);
  });
}

int sieve_gelu_forward(float* out, const float* inp, int64_t n) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(inp, "inp");
    check_sizes({n});
    SIEVE_OP_SCOPE;
    gelu_forward(out, inp, n);
  });
}

int sieve_gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
  return guarded([&] {
    check_ptr(dinp, "dinp"), check_ptr(dout, "dout"), check_ptr(inp, "inp");
    check_sizes({n});
    SIEVE_OP_SCOPE;
    gelu_backward(dinp, dout, inp, n);
  });
}

int sieve_swiglu_forward(float* out, const float* inp, int64_t N, int64_t H) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(inp, "inp");
    check_sizes({N, H});
    SIEVE_OP_SCOPE;
    swiglu_forward(out, inp, N, H);
  });
}

int sieve_swiglu_backward(float* dinp, const float* dout, const float* inp, int64_t N, int64_t H) {
  return guarded([&] {
    check_ptr(dinp, "dinp"), check_ptr(dout, "dout"), check_ptr(inp, "inp");
    check_sizes({N, H});
    SIEVE_OP_SCOPE;
    swiglu_backward(dinp, dout, inp, N, H);
  });
}

int sieve_rope_forward(float* qkv, float theta, int64_t B, int64_t T, int64_t C, int64_t NH) {
  return guarded([&] {
    check_ptr(qkv, "qkv");
    check_sizes({B, T, C, NH});
    check_heads(C, NH, true);
    SIEVE_CHECK(std::isfinite(theta) && theta > 0.0f, "theta must be a finite number > 0, got %g", (double)theta);
    std::vector<float> cs(T * (C / NH / 2)), sn(cs.size());
    rope_tables(cs.data(), sn.data(), theta, T, C / NH);
    SIEVE_OP_SCOPE;
    rope_forward(qkv, cs.data(), sn.data(), B, T, C, NH);
  });
}

int sieve_rope_backward(float* dqkv, float theta, int64_t B, int64_t T, int64_t C, int64_t NH) {
  return guarded([&] {
    check_ptr(dqkv, "dqkv");
    check_sizes({B, T, C, NH});
    check_heads(C, NH, true);
    SIEVE_CHECK(std::isfinite(theta) && theta > 0.0f, "theta must be a finite number > 0, got %g", (double)theta);
    std::vector<float> cs(T * (C / NH / 2)), sn(cs.size());
    rope_tables(cs.data(), sn.data(), theta, T, C / NH);
    SIEVE_OP_SCOPE;
    rope_backward(dqkv, cs.data(), sn.data(), B, T, C, NH);
  });
}

int sieve_attention_forward(float* out, float* att, const float* qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(att, "att"), check_ptr(qkv, "qkv");
    check_sizes({B, T, C, NH});
    check_heads(C, NH, false);
    SIEVE_OP_SCOPE;
    attention_forward(out, att, nullptr, qkv, B, T, C, NH);
  });
}

int sieve_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int64_t B, int64_t T,
                             int64_t C, int64_t NH) {
  return guarded([&] {
    check_ptr(dqkv, "dqkv"), check_ptr(dout, "dout"), check_ptr(qkv, "qkv"), check_ptr(att, "att");
    check_sizes({B, T, C, NH});
    check_heads(C, NH, false);
    SIEVE_OP_SCOPE;
    std::vector<float> scratch((size_t)omp_get_max_threads() * T * T);
    attention_backward(dqkv, scratch.data(), dout, qkv, att, B, T, C, NH);
  });
}

int sieve_embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                            int64_t C, int64_t V) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(tokens, "tokens"), check_ptr(wte, "wte");
    check_sizes({B, T, C, V});
    check_tokens(tokens, B * T, V, "tokens", false);
    SIEVE_OP_SCOPE;
    embedding_forward(out, tokens, wte, wpe, B, T, C);
  });
}

int sieve_embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B, int64_t T,
                             int64_t C, int64_t V) {
  return guarded([&] {
    check_ptr(dwte, "dwte"), check_ptr(dout, "dout"), check_ptr(tokens, "tokens");
    check_sizes({B, T, C, V});
    check_tokens(tokens, B * T, V, "tokens", false);
    SIEVE_OP_SCOPE;
    embedding_backward(dwte, dwpe, dout, tokens, B, T, C, V);
  });
}

int sieve_loss_forward(float* losses, const float* logits, const int32_t* targets, const float* teacher, float alpha,
                       float tau, int64_t N, int64_t V) {
  return guarded([&] {
    check_ptr(losses, "losses"), check_ptr(logits, "logits"), check_ptr(targets, "targets");
    check_sizes({N, V});
    check_tokens(targets, N, V, "targets", true);
    check_loss_args(teacher, alpha, tau);
    SIEVE_OP_SCOPE;
    const float a = teacher ? alpha : 0.0f, t = teacher ? tau : 1.0f;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
      const RowLoss rl = loss_row(nullptr, logits + r * V, targets[r], teacher ? teacher + r * V : nullptr, a, t, 0.0f, V);
      losses[r] = (1.0f - a) * rl.ce + a * t * t * rl.kl;
    }
  });
}

int sieve_loss_backward(float* dlogits, const float* dlosses, const float* logits, const int32_t* targets,
                        const float* teacher, float alpha, float tau, int64_t N, int64_t V) {
  return guarded([&] {
    check_ptr(dlogits, "dlogits"), check_ptr(dlosses, "dlosses"), check_ptr(logits, "logits");
    check_ptr(targets, "targets");
    check_sizes({N, V});
    check_tokens(targets, N, V, "targets", true);
    check_loss_args(teacher, alpha, tau);
    SIEVE_OP_SCOPE;
    const float a = teacher ? alpha : 0.0f, t = teacher ? tau : 1.0f;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++)
      loss_row(dlogits + r * V, logits + r * V, targets[r], teacher ? teacher + r * V : nullptr, a, t, dlosses[r], V);
  });
}

int sieve_transform_forward(float* wt, const float* w, const float* mask, int32_t kind, const float* params,
                            int64_t n_params, int64_t n) {
  return guarded([&] {
    check_ptr(wt, "wt"), check_ptr(w, "w");
    check_sizes({n});
    check_flat_transform(kind, params, n_params, mask, n);
    const SeamSpec spec{kind, std::vector<float>(params, params + n_params)};
    const TransformInputs in{w, mask, nullptr, 1, n, 0};
    const TransformState state = transform_setup(spec, in);
    SIEVE_OP_SCOPE;
    transform_forward(wt, in, spec, state);
  });
}

int sieve_transform_backward(float* dw, const float* dwt, const float* w, const float* mask, int32_t kind,
                             const float* params, int64_t n_params, int64_t n) {
  return guarded([&] {
    check_ptr(dw, "dw"), check_ptr(dwt, "dwt"), check_ptr(w, "w");
    check_sizes({n});
    check_flat_transform(kind, params, n_params, mask, n);
    const SeamSpec spec{kind, std::vector<float>(params, params + n_params)};
    const TransformInputs in{w, mask, nullptr, 1, n, 0};
    const TransformState state = transform_setup(spec, in);
    SIEVE_OP_SCOPE;
    transform_backward(dw, nullptr, dwt, in, spec, state);
  });
}

int sieve_grad_hook(float* grad, const float* w, const float* mask, int32_t kind, const float* params, int64_t n_params,
                    int64_t n) {
  return guarded([&] {
    check_ptr(grad, "grad"), check_ptr(w, "w");
    check_sizes({n});
    check_seam_params(params, n_params);
    grad_hook_validate(kind, params, n_params, "(op)");
    if (grad_hook_uses_mask(kind)) check_ptr(mask, "mask");
    const SeamSpec spec{kind, std::vector<float>(params, params + n_params)};
    SIEVE_OP_SCOPE;
    grad_hook_apply(grad, w, mask, spec, n);
  });
}

int sieve_adamw_update(float* w, float* m, float* v, const float* grad, float lr, float beta1, float beta2, float eps,
                       float weight_decay, int64_t t, int64_t n) {
  return guarded([&] {
    check_ptr(w, "w"), check_ptr(m, "m"), check_ptr(v, "v"), check_ptr(grad, "grad");
    check_sizes({n});
    SIEVE_CHECK(t >= 1, "t must be >= 1 (the 1-based optimizer step), got %lld", (long long)t);
    SIEVE_OP_SCOPE;
    adamw_update(w, m, v, grad, lr, beta1, beta2, eps, weight_decay, t, n);
  });
}

int sieve_ast_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1,
                     float beta2, float eps, float weight_decay, float lambda, int64_t t, int64_t n) {
  return guarded([&] {
    check_ptr(w, "w"), check_ptr(m, "m"), check_ptr(v, "v"), check_ptr(grad, "grad"), check_ptr(mask, "mask");
    check_sizes({n});
    check_adam(lr, beta1, beta2, eps, t);
    SIEVE_CHECK(std::isfinite(weight_decay) && weight_decay >= 0.0f, "weight_decay must be a finite number >= 0, got %g",
                (double)weight_decay);
    SIEVE_CHECK(std::isfinite(lambda) && lambda >= 0.0f, "lambda must be a finite number >= 0, got %g", (double)lambda);
    SIEVE_OP_SCOPE;
    ast_update(w, m, v, grad, mask, lr, beta1, beta2, eps, weight_decay, lambda, t, n);
  });
}

int sieve_adams_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1,
                       float beta2, float eps, float alpha, float lambda, int64_t t, int64_t n) {
  return guarded([&] {
    check_ptr(w, "w"), check_ptr(m, "m"), check_ptr(v, "v"), check_ptr(grad, "grad"), check_ptr(mask, "mask");
    check_sizes({n});
    check_adam(lr, beta1, beta2, eps, t);
    SIEVE_CHECK(alpha >= 0.0f && alpha <= 1.0f, "alpha must be in [0, 1], got %g", (double)alpha);
    SIEVE_CHECK(std::isfinite(lambda) && lambda >= 0.0f, "lambda must be a finite number >= 0, got %g", (double)lambda);
    SIEVE_OP_SCOPE;
    adams_update(w, m, v, grad, mask, lr, beta1, beta2, eps, alpha, lambda, t, n);
  });
}

// ---------------------------------------------------------------- 2:4 sparsity

int sieve_mask24_magnitude(float* mask, const float* w, int64_t R, int64_t K) {
  return guarded([&] {
    check_ptr(mask, "mask"), check_ptr(w, "w");
    check_groups(R, K, false);
    SIEVE_OP_SCOPE;
    mask24_magnitude(mask, w, R, K);
  });
}

int sieve_mask24_transposable(float* mask, const float* w, int64_t R, int64_t K) {
  return guarded([&] {
    check_ptr(mask, "mask"), check_ptr(w, "w");
    check_groups(R, K, true);
    SIEVE_OP_SCOPE;
    mask24_transposable(mask, w, R, K);
  });
}

int sieve_sste_threshold(float* out, const float* w, int64_t R, int64_t K) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(w, "w");
    check_groups(R, K, false);
    SIEVE_OP_SCOPE;
    sste_threshold(out, w, 1.0f, R * K);
  });
}

int sieve_sste_beta(double* beta, const float* w, int64_t R, int64_t K) {
  return guarded([&] {
    check_ptr(beta, "beta"), check_ptr(w, "w");
    check_groups(R, K, false);
    SIEVE_OP_SCOPE;
    double ws = 0, ss = 0;
    sste_dots(&ws, &ss, w, R * K);
    SIEVE_CHECK(ss > 0.0, "S(w) is all zero (every group's 2nd and 3rd largest |w| are tied): beta is undefined");
    const double b = ws / ss;
    SIEVE_CHECK(std::isfinite(b), "beta is not finite (%g): w holds NaN or inf", b);
    *beta = b;
  });
}

int sieve_mvue24(float* out, const float* g, int64_t N, int64_t OC, uint64_t seed) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(g, "g");
    check_sizes({N, OC});
    SIEVE_CHECK(N <= kMaxSize / OC, "N*OC = %lld*%lld is too large (at most 2^30 elements)", (long long)N, (long long)OC);
    SIEVE_OP_SCOPE;
    mvue24(out, g, N, OC, OC, OC, seed);
  });
}

int sieve_mask_flips(int64_t* flips, const float* before, const float* after, int64_t n) {
  return guarded([&] {
    check_ptr(flips, "flips"), check_ptr(before, "before"), check_ptr(after, "after");
    check_sizes({n});
    SIEVE_OP_SCOPE;
    *flips = mask_flips(before, after, n);
  });
}

int sieve_count24_violations(int64_t* groups, const float* w, int64_t R, int64_t K) {
  return guarded([&] {
    check_ptr(groups, "groups"), check_ptr(w, "w");
    check_groups(R, K, false);
    SIEVE_OP_SCOPE;
    *groups = count24_along_rows(w, R, K);
  });
}

int sieve_weight_scale_forward(float* wt, const float* w, const float* scale, int64_t R, int64_t K, int64_t SG) {
  return guarded([&] {
    check_ptr(wt, "wt"), check_ptr(w, "w"), check_ptr(scale, "scale");
    check_scale(R, K, SG);
    SIEVE_OP_SCOPE;
    weight_scale_forward(wt, w, scale, R, K, SG);
  });
}

int sieve_weight_scale_backward(float* dw, float* dscale, const float* dwt, const float* w, const float* scale,
                                int64_t R, int64_t K, int64_t SG) {
  return guarded([&] {
    check_ptr(dw, "dw"), check_ptr(dscale, "dscale"), check_ptr(dwt, "dwt"), check_ptr(w, "w");
    check_ptr(scale, "scale");
    check_scale(R, K, SG);
    SIEVE_OP_SCOPE;
    weight_scale_backward(dw, dscale, dwt, w, scale, R, K, SG);
  });
}

int sieve_slorb_init_mean(float* s, const float* w, const float* mask, int64_t R, int64_t K, int64_t k) {
  return guarded([&] {
    check_ptr(s, "s"), check_ptr(w, "w"), check_ptr(mask, "mask");
    check_sizes({R, K, k});
    SIEVE_CHECK(R <= kMaxSize / K, "R*K = %lld*%lld is too large (at most 2^30 elements)", (long long)R, (long long)K);
    SIEVE_CHECK(K % k == 0, "the SLoRB block size k = %lld must divide K = %lld", (long long)k, (long long)K);
    SIEVE_OP_SCOPE;
    slorb_init_mean(s, w, mask, R, K, k);
  });
}

int sieve_global_norm(double* out, const float* x, int64_t n) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(x, "x");
    check_sizes({n});
    SIEVE_OP_SCOPE;
    *out = global_norm(x, n);
  });
}

}  // extern "C"
