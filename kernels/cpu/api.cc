// api.cc — the extern "C" functions of sieve.h for the CPU backend.
//
// Every function: checks its arguments (one clear sentence per problem), applies the
// thread count, runs the C++ implementation inside a catch-all, and returns a status with
// the message in the calling thread's sieve_last_error(). Nothing here exits, aborts or
// prints. Model calls that touch state take the model's busy flag, so two overlapping
// calls on one model are refused instead of racing.
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "gemm.h"
#include "model.h"
#include "ops.h"
#include "update_rule.h"

namespace sieve::cpu {

namespace {
thread_local std::string g_last_error;
std::atomic<int> g_default_threads{0};

int default_threads() {
  int t = g_default_threads.load();
  if (t <= 0) {
    t = omp_get_max_threads();  // OMP_NUM_THREADS, or the core count
    g_default_threads.store(t);
  }
  return t;
}

template <class F>
int guarded(F&& body) {
  try {
    body();
    return SIEVE_OK;
  } catch (const Error& e) {
    g_last_error = e.message;
    return e.status;
  } catch (const std::bad_alloc&) {
    g_last_error = "out of memory";
    return SIEVE_E_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    g_last_error = std::string("internal error: ") + e.what();
    return SIEVE_E_INTERNAL;
  } catch (...) {
    g_last_error = "internal error: unknown exception";
    return SIEVE_E_INTERNAL;
  }
}

// Holds the model's busy flag for one call.
class BusyGuard {
 public:
  explicit BusyGuard(sieve_model* m) : m_(m) {
    if (m_->busy.exchange(1)) fail(SIEVE_E_STATE, "model is busy: another call on it is still running");
  }
  ~BusyGuard() { m_->busy.store(0); }

 private:
  sieve_model* m_;
};

sieve_model& model_ref(sieve_model* m) {
  if (!m) fail(SIEVE_E_INVALID_ARGUMENT, "model is NULL");
  return *m;
}
const sieve_model& model_ref(const sieve_model* m) {
  if (!m) fail(SIEVE_E_INVALID_ARGUMENT, "model is NULL");
  return *m;
}

void check_ptr(const void* p, const char* what) {
  if (!p) fail(SIEVE_E_INVALID_ARGUMENT, "%s is NULL", what);
}

void check_tensor_index(const sieve_model& m, int64_t i) {
  SIEVE_CHECK(i >= 0 && i < (int64_t)m.tensors.size(), "tensor index %lld is out of range [0, %lld)", (long long)i,
              (long long)m.tensors.size());
}

void check_params(const float* params, int64_t n) {
  SIEVE_CHECK(n >= 0 && n <= 64, "n_params must be in [0, 64], got %lld", (long long)n);
  if (n > 0) check_ptr(params, "params");
}

constexpr int64_t kMaxTokens = int64_t(1) << 24;

void check_batch(const sieve_model& m, int64_t B, int64_t T, int64_t min_T) {
  SIEVE_CHECK(B >= 1, "B must be at least 1, got %lld", (long long)B);
  SIEVE_CHECK(T >= min_T, "T must be at least %lld, got %lld", (long long)min_T, (long long)T);
  SIEVE_CHECK(T <= m.cfg.context, "T = %lld exceeds the model's context (%lld)", (long long)T,
              (long long)m.cfg.context);
  SIEVE_CHECK(B <= kMaxTokens / T, "B*T = %lld tokens is too many for one call (at most %lld)",
              (long long)(B * T), (long long)kMaxTokens);
}

void check_tokens(const int32_t* tokens, int64_t n, int64_t V, const char* what, bool allow_ignore) {
  for (int64_t i = 0; i < n; i++) {
    const int32_t t = tokens[i];
    if (t >= 0 && t < V) continue;
    if (allow_ignore && t == -1) continue;
    fail(SIEVE_E_INVALID_ARGUMENT, "%s[%lld] = %d is not a token id of this model (vocab %lld%s)", what, (long long)i,
         (int)t, (long long)V, allow_ignore ? "; -1 ignores a position" : "");
  }
}

void check_sizes(std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes) SIEVE_CHECK(s >= 1 && s <= kMaxTokens * 64, "sizes must be in [1, 2^30], got %lld", (long long)s);
}

}  // namespace

[[noreturn]] void fail(int status, const char* fmt, ...) {
  char buf[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, args);
  va_end(args);
  throw Error{status, buf};
}

}  // namespace sieve::cpu

using namespace sieve::cpu;

extern "C" {

const char* sieve_last_error(void) { return g_last_error.c_str(); }

int sieve_backend(sieve_backend_info* out) {
  return guarded([&] {
    check_ptr(out, "out");
    out->abi_version = SIEVE_ABI_VERSION;
    out->name = "cpu";
    out->blas = blas_name();
    out->default_threads = default_threads();
  });
}

int sieve_set_default_threads(int32_t threads) {
  return guarded([&] {
    SIEVE_CHECK(threads >= 1 && threads <= 1024, "threads must be in [1, 1024], got %d", (int)threads);
    g_default_threads.store(threads);
  });
}

int sieve_config_check(const sieve_config* config) {
  return guarded([&] {
    check_ptr(config, "config");
    config_check(*config);
  });
}

// ---------------------------------------------------------------- model

int sieve_model_create(sieve_model** out, const sieve_config* config) {
  return guarded([&] {
    check_ptr(out, "out");
    check_ptr(config, "config");
    *out = nullptr;
    auto* m = new sieve_model();
    try {
      m->threads = default_threads();
      ThreadScope scope(m->threads);
      model_build(*m, *config);
    } catch (...) {
      delete m;
      throw;
    }
    *out = m;
  });
}

void sieve_model_destroy(sieve_model* model) { delete model; }

int sieve_model_num_params(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).num_params;
  });
}

int sieve_model_num_tensors(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = (int64_t)model_ref(model).tensors.size();
  });
}

int sieve_model_tensor(const sieve_model* model, int64_t index, sieve_tensor_info* out) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    check_tensor_index(m, index);
    const TensorEntry& t = m.tensors[index];
    out->name = t.name.c_str();
    out->offset = t.offset;
    out->size = t.size;
    out->ndim = t.ndim;
    out->shape[0] = t.shape[0];
    out->shape[1] = t.shape[1];
    out->kind = t.kind;
    out->scope = t.scope;
    out->decay = t.decay;
  });
}

int sieve_model_find_tensor(const sieve_model* model, const char* name, int64_t* index) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    check_ptr(name, "name");
    check_ptr(index, "index");
    auto it = m.by_name.find(name);
    if (it == m.by_name.end()) fail(SIEVE_E_INVALID_ARGUMENT, "this model has no tensor named '%s'", name);
    *index = it->second;
  });
}

int sieve_model_buffer(sieve_model* model, int32_t which, float** data, int64_t* size) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(data, "data");
    check_ptr(size, "size");
    BusyGuard busy(&m);
    *data = model_buffer(m, which);
    *size = m.num_params;
  });
}

int sieve_model_set_threads(sieve_model* model, int32_t threads) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    SIEVE_CHECK(threads >= 1 && threads <= 1024, "threads must be in [1, 1024], got %d", (int)threads);
    BusyGuard busy(&m);
    m.threads = threads;
  });
}

int sieve_model_get_threads(const sieve_model* model, int32_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).threads;
  });
}

int sieve_model_init(sieve_model* model, uint64_t seed) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    model_init(m, seed);
  });
}

int sieve_model_get_step(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).step;
  });
}

int sieve_model_set_step(sieve_model* model, int64_t step) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    SIEVE_CHECK(step >= 0, "step must be >= 0, got %lld", (long long)step);
    BusyGuard busy(&m);
    m.step = step;
  });
}

int sieve_model_set_transform(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_params(params, n_params);
    BusyGuard busy(&m);
    model_set_transform(m, tensor, kind, params, n_params);
  });
}

int sieve_model_set_grad_hook(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_params(params, n_params);
    BusyGuard busy(&m);
    model_set_grad_hook(m, tensor, kind, params, n_params);
  });
}

int sieve_model_set_update_rule(sieve_model* model, int64_t tensor, int32_t kind, const float* params,
                                int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_params(params, n_params);
    BusyGuard busy(&m);
    model_set_update_rule(m, tensor, kind, params, n_params);
  });
}

int sieve_model_zero_grad(sieve_model* model) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    float* g = model_buffer(m, SIEVE_BUFFER_GRADS);
    const int64_t P = m.num_params;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < P; i++) g[i] = 0.0f;
  });
}

int sieve_model_forward_backward(sieve_model* model, sieve_loss* out, const int32_t* inputs, const int32_t* targets,
                                 const float* teacher_logits, const sieve_loss_opts* opts, int64_t B, int64_t T) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    check_ptr(inputs, "inputs");
    check_ptr(targets, "targets");
    check_ptr(opts, "opts");
    check_batch(m, B, T, 1);
    SIEVE_CHECK(std::isfinite(opts->loss_scale), "loss_scale must be finite, got %g", (double)opts->loss_scale);
    if (teacher_logits) {
      SIEVE_CHECK(opts->kd_alpha >= 0.0f && opts->kd_alpha <= 1.0f, "kd_alpha must be in [0, 1], got %g",
                  (double)opts->kd_alpha);
      SIEVE_CHECK(std::isfinite(opts->kd_tau) && opts->kd_tau > 0.0f, "kd_tau must be a finite number > 0, got %g",
                  (double)opts->kd_tau);
    }
    check_tokens(inputs, B * T, m.V, "inputs", false);
    check_tokens(targets, B * T, m.V, "targets", true);
    bool any = false;
    for (int64_t i = 0; i < B * T && !any; i++) any = targets[i] >= 0;
    SIEVE_CHECK(any, "every target is -1: the batch has nothing to predict");
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    *out = model_forward_backward(m, inputs, targets, teacher_logits, *opts, B, T);
  });
}

int sieve_model_optimizer_step(sieve_model* model, float* grad_norm, const sieve_optim_opts* opts) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(grad_norm, "grad_norm");
    check_ptr(opts, "opts");
    const sieve_optim_opts& o = *opts;
    SIEVE_CHECK(std::isfinite(o.lr) && o.lr >= 0.0f, "lr must be a finite number >= 0, got %g", (double)o.lr);
    SIEVE_CHECK(o.beta1 >= 0.0f && o.beta1 < 1.0f, "beta1 must be in [0, 1), got %g", (double)o.beta1);
    SIEVE_CHECK(o.beta2 >= 0.0f && o.beta2 < 1.0f, "beta2 must be in [0, 1), got %g", (double)o.beta2);
    SIEVE_CHECK(std::isfinite(o.eps) && o.eps > 0.0f, "eps must be a finite number > 0, got %g", (double)o.eps);
    SIEVE_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0f,
                "weight_decay must be a finite number >= 0, got %g", (double)o.weight_decay);
    SIEVE_CHECK(!std::isnan(o.grad_clip), "grad_clip must be a number (<= 0 disables clipping)");
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    *grad_norm = model_optimizer_step(m, o);
  });
}

int sieve_model_eval_nll(sieve_model* model, float* nll, const int32_t* tokens, int64_t B, int64_t T,
                         sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(nll, "nll");
    check_ptr(tokens, "tokens");
    check_batch(m, B, T, 2);
    check_tokens(tokens, B * T, m.V, "tokens", false);
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    model_infer(m, nll, nullptr, tokens, B, T, progress, user);
  });
}

int sieve_model_logits(sieve_model* model, float* logits, const int32_t* tokens, int64_t B, int64_t T,
                       sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(logits, "logits");
    check_ptr(tokens, "tokens");
    check_batch(m, B, T, 1);
    check_tokens(tokens, B * T, m.V, "tokens", false);
    BusyGuard busy(&m);
    ThreadScope scope(m.threads);
    model_infer(m, nullptr, logits, tokens, B, T, progress, user);
  });
}

int sieve_model_cancel(sieve_model* model) {
  return guarded([&] { model_ref(model).cancel.store(1); });
}

int sieve_model_clear_cancel(sieve_model* model) {
  return guarded([&] { model_ref(model).cancel.store(0); });
}

int sieve_model_timers(const sieve_model* model, sieve_timers* out) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    *out = m.timers;
    out->gemm_seconds = m.gemm_stats.seconds;
    out->gemm_flops = m.gemm_stats.flops;
  });
}

int sieve_model_reset_timers(sieve_model* model) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    m.timers = sieve_timers{};
    m.gemm_stats = GemmStats{};
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

int sieve_lr_at(double* lr, int64_t step, double peak, double min, int64_t warmup, int64_t total) {
  return guarded([&] {
    check_ptr(lr, "lr");
    SIEVE_CHECK(step >= 0, "step must be >= 0, got %lld", (long long)step);
    SIEVE_CHECK(std::isfinite(peak) && peak >= 0.0, "peak must be a finite number >= 0, got %g", peak);
    SIEVE_CHECK(std::isfinite(min) && min >= 0.0 && min <= peak, "min must be in [0, peak], got %g", min);
    SIEVE_CHECK(warmup >= 0, "warmup must be >= 0, got %lld", (long long)warmup);
    SIEVE_CHECK(total >= warmup, "total (%lld) must be >= warmup (%lld)", (long long)total, (long long)warmup);
    *lr = lr_at(step, peak, min, warmup, total);
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

static void check_heads(int64_t C, int64_t NH, bool rope) {
  SIEVE_CHECK(C % NH == 0, "NH (%lld) must divide C (%lld)", (long long)NH, (long long)C);
  if (rope) SIEVE_CHECK((C / NH) % 2 == 0, "head size C/NH = %lld must be even for RoPE", (long long)(C / NH));
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

static void check_loss_args(const float* teacher, float alpha, float tau) {
  if (!teacher) return;
  SIEVE_CHECK(alpha >= 0.0f && alpha <= 1.0f, "alpha must be in [0, 1], got %g", (double)alpha);
  SIEVE_CHECK(std::isfinite(tau) && tau > 0.0f, "tau must be a finite number > 0, got %g", (double)tau);
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
    check_params(params, n_params);
    transform_validate(kind, params, n_params, "(op)");
    if (transform_uses_mask(kind)) check_ptr(mask, "mask");
    TransformSpec spec{kind, std::vector<float>(params, params + n_params), {}};
    transform_setup(spec, w, n);
    SIEVE_OP_SCOPE;
    transform_forward(wt, w, mask, spec, n);
  });
}

int sieve_transform_backward(float* dw, const float* dwt, const float* w, const float* mask, int32_t kind,
                             const float* params, int64_t n_params, int64_t n) {
  return guarded([&] {
    check_ptr(dw, "dw"), check_ptr(dwt, "dwt"), check_ptr(w, "w");
    check_sizes({n});
    check_params(params, n_params);
    transform_validate(kind, params, n_params, "(op)");
    if (transform_uses_mask(kind)) check_ptr(mask, "mask");
    TransformSpec spec{kind, std::vector<float>(params, params + n_params), {}};
    transform_setup(spec, w, n);
    SIEVE_OP_SCOPE;
    transform_backward(dw, dwt, w, mask, spec, n);
  });
}

int sieve_grad_hook(float* grad, const float* w, const float* mask, int32_t kind, const float* params, int64_t n_params,
                    int64_t n) {
  return guarded([&] {
    check_ptr(grad, "grad"), check_ptr(w, "w");
    check_sizes({n});
    check_params(params, n_params);
    grad_hook_validate(kind, params, n_params, "(op)");
    if (grad_hook_uses_mask(kind)) check_ptr(mask, "mask");
    HookSpec spec{kind, std::vector<float>(params, params + n_params)};
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

int sieve_global_norm(double* out, const float* x, int64_t n) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(x, "x");
    check_sizes({n});
    SIEVE_OP_SCOPE;
    *out = global_norm(x, n);
  });
}

}  // extern "C"
