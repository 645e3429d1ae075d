// train.cu — G5: GPT-2 small training on the GPU model (cuda/model.cu) through the C API, as
// sieve's stages drive it: forward + backward of a (B, T) batch, then one AdamW step with
// clipping, tokens per second over whole steps (host clock; both calls end synchronised).
// The same model S-STE-sparse (every block linear weight under the fused soft threshold, 2:4
// GEMMs not used yet) shows what the transform costs. bench/gpu/torch_reference.py's `train`
// section measures PyTorch on the same configuration in the same call.
#include <algorithm>
#include <chrono>
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

sieve_config gpt2_small() {
  sieve_config c{};
  c.family = SIEVE_FAMILY_GPT2;
  c.layers = 12, c.dim = 768, c.heads = 12, c.context = 1024, c.vocab = 50257, c.mlp_hidden = 3072;
  c.norm_eps = 1e-5f;
  return c;
}

// Median seconds of one training step over `steps` after `warmup`.
double step_seconds(sieve_model* m, int64_t B, int64_t T, int64_t V, int warmup, int steps) {
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
    const auto t0 = std::chrono::steady_clock::now();
    sieve_loss l{};
    float norm = 0;
    ok(sieve_model_zero_grad(m), "zero_grad");
    ok(sieve_model_forward_backward(m, &l, in.data(), tg.data(), nullptr, &lo, B, T), "forward_backward");
    ok(sieve_model_optimizer_step(m, &norm, &oo), "optimizer_step");
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void train_row(gb::Bench& b, const char* target, const std::string& what, bool sste) {
  const sieve_config cfg = gpt2_small();
  const int64_t B = 16, T = 1024;
  sieve_model* m = nullptr;
  ok(sieve_model_create(&m, &cfg, SIEVE_DEVICE_CUDA), "create");
  try {
    ok(sieve_model_init(m, 1), "init");
    if (sste) {
      int64_t n = 0;
      ok(sieve_model_num_tensors(m, &n), "num_tensors");
      for (int64_t i = 0; i < n; i++) {
        sieve_tensor_info t{};
        ok(sieve_model_tensor(m, i, &t), "tensor");
        if (t.kind != SIEVE_KIND_LINEAR) continue;
        double beta = 0;
        ok(sieve_model_sste_beta(m, i, &beta), "sste_beta");
        const float p = (float)beta;
        ok(sieve_model_set_transform(m, i, SIEVE_TRANSFORM_SSTE, &p, 1), "set_transform");
      }
    }
    ok(sieve_model_reset_timers(m), "reset_timers");
    const double s = step_seconds(m, B, T, cfg.vocab, 3, 10);
    sieve_timers tm{};
    ok(sieve_model_timers(m, &tm), "timers");
    b.row({target, what, {{"ms/step", s * 1e3}, {"tokens/s", (double)(B * T) / s},
                          {"GEMM TFLOP/s in step", tm.gemm_flops / 13.0 / s / 1e12}}});
  } catch (...) {
    sieve_model_destroy(m);
    throw;
  }
  sieve_model_destroy(m);
}

SIEVE_GPU_BENCH(train_gpt2_small) {
  train_row(b, "G5", "sieve GPT-2 small dense training B=16 T=1024 (bf16 GEMMs, fp32 rest)", false);
  train_row(b, "", "sieve GPT-2 small S-STE training B=16 T=1024 (dense GEMMs of beta S(W))", true);
}

}  // namespace
