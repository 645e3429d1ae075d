// attention.cu — the fused causal attention (cuda/attention.cuh), forward and backward, at the
// attention shapes of GPT-2 small (C = 768, 12 heads) and medium (C = 1024, 16 heads), B = 16,
// T = 1024, in both kinds of math: fp32 on CUDA cores and bf16 on tensor cores (AttentionMath,
// named explicitly; the default at these head sizes is bf16).
//
// TFLOP/s counts the causal work only (half of the T x T scores): the forward's two products
// are 2 B NH T^2 HS, the backward 2.5 times that (its five products; the dQ / dK,dV split's
// recomputation of S and dP is not counted, as FlashAttention-2 reports it). The forward row
// writes lse (as training does), the backward row includes its D pre-pass and uses the timed
// forward's out and lse. Inputs are random; one set of buffers suffices: qkv alone is 151 MB
// (small) and 201 MB (medium), well past L2.
#include <cmath>
#include <string>

#include "bench.h"
#include "cuda/attention.cuh"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"

namespace {

using sieve::cuda::DeviceBuffer;
namespace gb = sieve::gpu_bench;

// Uniform in (-1, 1) from a counter hash: scores of unit scale, never all zero.
__global__ void fill_uniform(float* x, int64_t n, uint64_t seed) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    x[i] = (float)(z >> 40) * 0x1.0p-23f - 1.0f + 0x1.0p-25f;
  }
}

DeviceBuffer<float> random_buffer(int64_t n, uint64_t seed) {
  DeviceBuffer<float> b(n);
  fill_uniform<<<sieve::cuda::grid_for(n, 256), 256>>>(b.get(), n, seed);
  SIEVE_LAUNCHED();
  return b;
}

struct Shape {
  int64_t C, NH;
  const char* model;
};
const Shape kShapes[] = {{768, 12, "GPT-2 small"}, {1024, 16, "GPT-2 medium"}};
constexpr int64_t kB = 16, kT = 1024;

}  // namespace

SIEVE_GPU_BENCH(attention) {
  for (const Shape& s : kShapes) {
    const int64_t n = kB * kT * s.C, HS = s.C / s.NH;
    const auto qkv = random_buffer(3 * n, 1), dout = random_buffer(n, 2);
    DeviceBuffer<float> out(n), lse(kB * s.NH * kT), dqkv(3 * n),
        scratch((int64_t)sieve::cuda::attention_backward_scratch_floats(kB, kT, s.C, s.NH));
    const double flops = 2.0 * (double)kB * (double)s.NH * (double)kT * (double)kT * (double)HS;
    const std::string shape = "B=16 T=1024 C=" + std::to_string(s.C) + " NH=" + std::to_string(s.NH) + " (" +
                              s.model + ")";

    using sieve::cuda::AttentionMath;
    for (AttentionMath math : {AttentionMath::fp32, AttentionMath::bf16}) {
      const std::string m = math == AttentionMath::fp32 ? "fp32" : "bf16";
      const double fwd = gb::median_ms([&](int) {
        sieve::cuda::attention_forward(out.get(), nullptr, lse.get(), qkv.get(), kB, kT, s.C, s.NH, 0, math);
      });
      b.row({"", "attention forward " + m + ", " + shape, {{"ms", fwd}, {"TFLOP/s", flops / (fwd * 1e-3) / 1e12}}});

      // out and lse of this math's forward (the last timed run)
      const double bwd = gb::median_ms([&](int) {
        sieve::cuda::attention_backward(dqkv.get(), dout.get(), qkv.get(), out.get(), lse.get(), scratch.get(), kB,
                                        kT, s.C, s.NH, 0, math);
      });
      b.row({"", "attention backward " + m + ", " + shape,
             {{"ms", bwd}, {"TFLOP/s", 2.5 * flops / (bwd * 1e-3) / 1e12}}});
    }
  }
}
