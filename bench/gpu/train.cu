// train.cu — G5 and G6: GPT-2 training on the GPU model (cuda/model.cu) through the C API, as
// sieve's stages drive it: forward + backward of a (B, T) batch, then one AdamW step with
// clipping, tokens per second over whole steps (host clock; both calls end synchronised).
// G5: GPT-2 small dense (bench/gpu/torch_reference.py's `train` section measures PyTorch on the
// same configuration in the same call). G6: GPT-2 medium with every block linear weight 2:4 —
// S-STE (fused soft threshold; cuSPARSELt forward GEMMs) and SR-STE with transposable masks
// (cuSPARSELt forward and input-gradient GEMMs), each also with MVUE on (the weight gradient on
// cuSPARSELt too) — against the same model dense, in the same run; and the same rows at LLaMA-7B's
// width (4 layers), where the GEMMs are most of a step.
#include <cuda_profiler_api.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.h"
#include "sieve.h"

namespace {

namespace gb = sieve::gpu_bench;

void ok(int status, const char* what) {
  if (status != SIEVE_OK) throw std::runtime_error(std::string(what) + ": " + sieve_last_error());
}

sieve_config gpt2(int64_t layers, int64_t dim, int64_t heads) {
  sieve_config c{};
  c.family = SIEVE_FAMILY_GPT2;
  c.layers = layers, c.dim = dim, c.heads = heads, c.context = 1024, c.vocab = 50257, c.mlp_hidden = 4 * dim;
  c.norm_eps = 1e-5f;
  return c;
}

sieve_config llama(int64_t layers, int64_t dim, int64_t heads, int64_t hidden) {
  sieve_config c{};
  c.family = SIEVE_FAMILY_LLAMA;
  c.layers = layers, c.dim = dim, c.heads = heads, c.context = 1024, c.vocab = 32000, c.mlp_hidden = hidden;
  c.norm_eps = 1e-5f, c.rope_theta = 10000.0f;
  return c;
}

// How the block linear weights are trained; with MVUE on the weight gradient too (its 2:4 product).
enum class Sparsity { dense, sste, srste_transposable };

// Median seconds of one training step over `steps` after `warmup`. With `profile`, the last step
// runs between cudaProfilerStart and Stop: what `ncu --profile-from-start off` sees of the bench.
double step_seconds(sieve_model* m, int64_t B, int64_t T, int64_t V, int warmup, int steps, bool profile) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<int32_t> tok(0, (int32_t)V - 1);
  std::vector<int32_t> in(B * T), tg(B * T);
  for (auto& t : in) t = tok(gen);
  for (auto& t : tg) t = tok(gen);
  sieve_loss_opts lo{};
  lo.loss_scale = 1.0f, lo.kd_alpha = 0.0f, lo.kd_tau = 1.0f;
  sieve_optim_opts oo{};
  oo.lr = 3e-4f, oo.beta1 = 0.9f, oo.beta2 = 0.95f, oo.eps = 1e-8f, oo.weight_decay = 0.1f, oo.grad_clip = 1.0f;
  std::vector<double> times;
  for (int s = 0; s < warmup + steps; s++) {
    const bool profiled = profile && s == warmup + steps - 1;
    if (profiled) cudaProfilerStart();
    const auto t0 = std::chrono::steady_clock::now();
    sieve_loss l{};
    float norm = 0;
    ok(sieve_model_zero_grad(m), "zero_grad");
    ok(sieve_model_forward_backward(m, &l, in.data(), tg.data(), nullptr, &lo, B, T), "forward_backward");
    ok(sieve_model_optimizer_step(m, &norm, &oo), "optimizer_step");
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (profiled) cudaProfilerStop();
    if (s >= warmup) times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Puts every block linear weight under `sparsity`, as the sparse-train stage does, and with `mvue`
// turns MVUE on for each (its weight gradient then multiplies on 2:4).
void sparsify(sieve_model* m, Sparsity sparsity, bool mvue) {
  if (sparsity == Sparsity::dense) return;
  int64_t n = 0;
  ok(sieve_model_num_tensors(m, &n), "num_tensors");
  std::vector<int64_t> linears;
  for (int64_t i = 0; i < n; i++) {
    sieve_tensor_info t{};
    ok(sieve_model_tensor(m, i, &t), "tensor");
    if (t.kind == SIEVE_KIND_LINEAR) linears.push_back(i);
  }
  if (mvue)
    for (int64_t i : linears) ok(sieve_model_set_mvue(m, i, 1, 0x24), "set_mvue");
  if (sparsity == Sparsity::sste) {
    for (int64_t i : linears) {
      double beta = 0;
      ok(sieve_model_sste_beta(m, i, &beta), "sste_beta");
      const float p = (float)beta;
      ok(sieve_model_set_transform(m, i, SIEVE_TRANSFORM_SSTE, &p, 1), "set_transform");
    }
    return;
  }
  std::vector<int64_t> flips(linears.size());
  ok(sieve_model_update_masks(m, SIEVE_MASK_TRANSPOSABLE, linears.data(), (int64_t)linears.size(), flips.data()),
     "update_masks");
  const float lambda = 2e-4f;
  for (int64_t i : linears) {
    ok(sieve_model_set_transform(m, i, SIEVE_TRANSFORM_MASK, nullptr, 0), "set_transform");
    ok(sieve_model_set_grad_hook(m, i, SIEVE_HOOK_MASKED_DECAY, &lambda, 1), "set_grad_hook");
  }
}

// One row: tokens/s of (cfg, sparsity) at B=16, T=1024, and its ratio to `dense_seconds` when given.
// The environment's SIEVE_PROFILE_ROW, when part of `what`, marks the row's last step for a profiler.
double train_row(gb::Bench& b, const char* target, const std::string& what, const sieve_config& cfg,
                 Sparsity sparsity, double dense_seconds = 0, bool mvue = false) {
  const int64_t B = 16, T = 1024;
  sieve_model* m = nullptr;
  ok(sieve_model_create(&m, &cfg, SIEVE_DEVICE_CUDA), "create");
  double s = 0;
  try {
    ok(sieve_model_init(m, 1), "init");
    sparsify(m, sparsity, mvue);
    ok(sieve_model_reset_timers(m), "reset_timers");
    const char* profiled = std::getenv("SIEVE_PROFILE_ROW");
    s = step_seconds(m, B, T, cfg.vocab, 3, 10, profiled && *profiled && what.find(profiled) != std::string::npos);
    sieve_timers tm{};
    ok(sieve_model_timers(m, &tm), "timers");
    const double steps = 13.0;
    gb::Row row{target, what, {{"ms/step", s * 1e3}, {"tokens/s", (double)(B * T) / s},
                               {"GEMM TFLOP/s in step", tm.gemm_flops / steps / s / 1e12},
                               {"2:4 share of GEMM flops", tm.sparse_gemm_flops / tm.gemm_flops}}};
    if (dense_seconds > 0) row.values["vs dense"] = dense_seconds / s;
    b.row(row);
  } catch (...) {
    sieve_model_destroy(m);
    throw;
  }
  sieve_model_destroy(m);
  return s;
}

SIEVE_GPU_BENCH(train_gpt2_small) {
  const sieve_config small = gpt2(12, 768, 12);
  const double dense = train_row(b, "G5", "sieve GPT-2 small dense training B=16 T=1024 (bf16 GEMMs, fp32 rest)", small,
                                 Sparsity::dense);
  train_row(b, "", "sieve GPT-2 small S-STE training B=16 T=1024 (2:4 forward GEMMs)", small, Sparsity::sste, dense);
}

// G6's rows for one model: dense, S-STE, SR-STE with transposable masks, then each with MVUE on
// (the papers' recipes: S-STE with MVUE; T-SR-STE, all three products on 2:4 where the widths allow).
void g6_rows(gb::Bench& b, const std::string& model, const sieve_config& cfg) {
  const double dense = train_row(b, "", "sieve " + model + " dense training B=16 T=1024", cfg, Sparsity::dense);
  train_row(b, "G6", "sieve " + model + " S-STE training B=16 T=1024 (2:4 forward GEMMs)", cfg, Sparsity::sste, dense);
  train_row(b, "G6", "sieve " + model + " SR-STE transposable B=16 T=1024 (2:4 forward + input-gradient GEMMs)", cfg,
            Sparsity::srste_transposable, dense);
  // MVUE's weight-gradient product runs on 2:4 only where SIEVE_CUDA_WGRAD24's default allows it
  // (OC and IC both at least 4096: not at GPT-2 widths, where it is slower than dense).
  train_row(b, "G6",
            "sieve " + model + " S-STE + MVUE B=16 T=1024 (2:4 forward GEMMs; weight gradient 2:4 where OC, IC"
            " >= 4096)",
            cfg, Sparsity::sste, dense, true);
  train_row(b, "G6",
            "sieve " + model + " SR-STE transposable + MVUE B=16 T=1024 (2:4 forward + input-gradient GEMMs; weight"
            " gradient as above)",
            cfg, Sparsity::srste_transposable, dense, true);
}

SIEVE_GPU_BENCH(train_gpt2_medium) { g6_rows(b, "GPT-2 medium", gpt2(24, 1024, 16)); }

SIEVE_GPU_BENCH(train_llama_wide) { g6_rows(b, "LLaMA-7B-width 4 layers", llama(4, 4096, 32, 11008)); }

// LLaMA-70B's width (C = 8192, H = 28672), where cuSPARSELt's 2:4 products gain most over dense
// (bench gemm_24_*): 2.5 G parameters in 2 layers, so that the dense LM head stays a small share
// of the step. With fp32 weights, gradients, Adam's moments, the masks, the bf16 and compressed
// copies and B=16, T=1024's activations it needs about 85 GB by count: an H200's, not an H100's
// (there a row fails for memory, and the bench says so after the rows it finished).
SIEVE_GPU_BENCH(train_llama70_wide) { g6_rows(b, "LLaMA-70B-width 2 layers", llama(2, 8192, 64, 28672)); }

}  // namespace
