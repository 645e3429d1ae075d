// sparsity.cu — G3 (the fused S-STE kernel) and G4 (the transposable 2:4 mask) against the
// device's copy bandwidth, at the FFN weight shapes of GPT-2 small, LLaMA-7B and LLaMA-70B;
// the magnitude mask, the AdamW step and MVUE on an output gradient as reference rows.
//
// Bandwidth counts the bytes a kernel must move once (each input read, each output written)
// over its median time. The inputs rotate over enough sets that a pass reads well past L2
// (50 MB on H200), so no row is an L2 figure. Weights are random (never zeros).
#include <algorithm>
#include <string>
#include <vector>

#include "bench.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"
#include "cuda/sparsity.cuh"
#include "cuda/update_rule.cuh"

namespace {

using sieve::cuda::DeviceBuffer;
namespace gb = sieve::gpu_bench;

struct Shape {
  int64_t R, K;
  const char* model;
};
const Shape kShapes[] = {{768, 3072, "GPT-2 small"}, {4096, 11008, "LLaMA-7B"}, {8192, 28672, "LLaMA-70B"}};

// offset + uniform in (-scale, scale), from a counter hash (fast to fill GBs); with offset 0
// never exactly zero.
__global__ void fill_random(float* x, int64_t n, uint64_t seed, float scale, float offset) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    uint64_t z = seed + (uint64_t)(i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    x[i] = offset + scale * ((float)(z >> 40) * 0x1.0p-23f - 1.0f + 0x1.0p-25f);
  }
}

DeviceBuffer<float> random_buffer(int64_t n, uint64_t seed, float scale = 1.0f, float offset = 0.0f) {
  DeviceBuffer<float> b(n);
  fill_random<<<sieve::cuda::grid_for(n, 256), 256>>>(b.get(), n, seed, scale, offset);
  SIEVE_LAUNCHED();
  return b;
}

// Sets of buffers whose rotation moves at least 1 GiB per cycle (20x the H200's L2), and at least 2.
int sets_for(double bytes_per_set) { return std::max(2, (int)((double)(size_t(1) << 30) / bytes_per_set) + 1); }

double copy_bw() {
  static const double bw = gb::copy_bandwidth(size_t(2) << 30);
  return bw;
}

gb::Row bandwidth_row(const char* target, std::string what, double ms, double bytes) {
  const double bw = bytes / (ms * 1e-3);
  return {target, std::move(what), {{"ms", ms}, {"TB/s", bw / 1e12}, {"of copy", bw / copy_bw()}}};
}

std::string shape_text(const Shape& s) {
  return std::to_string(s.R) + "x" + std::to_string(s.K) + " (" + s.model + ")";
}

}  // namespace

// G3: one read of fp32 w; out = beta S(w) as bf16 (the 2:4 GEMM's operand), optionally with
// the fp32 mask, or as fp32 (the CPU's layout).
SIEVE_GPU_BENCH(sste_fused) {
  struct Variant {
    const char* what;
    bool f32, bf16, mask;
  };
  const Variant variants[] = {
      {"S-STE w -> bf16", false, true, false},
      {"S-STE w -> bf16 + mask", false, true, true},
      {"S-STE w -> fp32", true, false, false},
  };
  for (const Shape& s : kShapes)
    for (const Variant& v : variants) {
      const int64_t n = s.R * s.K;
      const double bytes = (double)n * (4 + (v.f32 ? 4 : 0) + (v.bf16 ? 2 : 0) + (v.mask ? 4 : 0));
      const int sets = sets_for(bytes);
      std::vector<DeviceBuffer<float>> w, out, mask;
      std::vector<DeviceBuffer<__nv_bfloat16>> bf;
      for (int i = 0; i < sets; i++) {
        w.push_back(random_buffer(n, 1000 + i, 0.02f));
        out.emplace_back(v.f32 ? n : 0);
        mask.emplace_back(v.mask ? n : 0);
        bf.emplace_back(v.bf16 ? n : 0);
      }
      const double ms = gb::median_ms([&](int i) {
        const int k = i % sets;
        sieve::cuda::sste_threshold(out[k].get(), bf[k].get(), mask[k].get(), w[k].get(), 1.25f, n, 0);
      });
      b.row(bandwidth_row("G3", std::string(v.what) + ", " + shape_text(s), ms, bytes));
    }
}

// G4: read fp32 w, write the fp32 mask.
SIEVE_GPU_BENCH(mask24_transposable) {
  for (const Shape& s : kShapes) {
    const int64_t n = s.R * s.K;
    const double bytes = (double)n * 8;
    const int sets = sets_for(bytes);
    std::vector<DeviceBuffer<float>> w, mask;
    for (int i = 0; i < sets; i++) {
      w.push_back(random_buffer(n, 2000 + i));
      mask.emplace_back(n);
    }
    const double ms = gb::median_ms([&](int i) {
      const int k = i % sets;
      sieve::cuda::mask24_transposable(mask[k].get(), w[k].get(), s.R, s.K, 0);
    });
    b.row(bandwidth_row("G4", "transposable 2:4 mask, " + shape_text(s), ms, bytes));
  }
}

SIEVE_GPU_BENCH(mask24_magnitude) {
  for (const Shape& s : kShapes) {
    const int64_t n = s.R * s.K;
    const double bytes = (double)n * 8;
    const int sets = sets_for(bytes);
    std::vector<DeviceBuffer<float>> w, mask;
    for (int i = 0; i < sets; i++) {
      w.push_back(random_buffer(n, 3000 + i));
      mask.emplace_back(n);
    }
    const double ms = gb::median_ms([&](int i) {
      const int k = i % sets;
      sieve::cuda::mask24_magnitude(mask[k].get(), w[k].get(), s.R, s.K, 0);
    });
    b.row(bandwidth_row("", "magnitude 2:4 mask, " + shape_text(s), ms, bytes));
  }
}

// MVUE on dZ (16,384 tokens x D), fp32 in and the weight-gradient GEMM's bf16 operand out: 6 bytes
// an element, at the widths of GPT-2 medium's projections and FFN and LLaMA-7B's FFN.
SIEVE_GPU_BENCH(mvue24) {
  const int64_t N = 16384;
  for (int64_t D : {int64_t(1024), int64_t(4096), int64_t(11008)}) {
    const int64_t n = N * D;
    const double bytes = (double)n * 6;
    const int sets = sets_for(bytes);
    std::vector<DeviceBuffer<float>> g;
    std::vector<DeviceBuffer<__nv_bfloat16>> out;
    for (int i = 0; i < sets; i++) {
      g.push_back(random_buffer(n, 8000 + i, 1e-3f));
      out.emplace_back(n);
    }
    const double ms = gb::median_ms([&](int i) {
      const int k = i % sets;
      sieve::cuda::mvue24(out[k].get(), g[k].get(), N, D, D, D, 0x24 + i, 0);
    });
    b.row(bandwidth_row("", "MVUE fp32 dZ -> bf16, 16384x" + std::to_string(D), ms, bytes));
  }
}

// Read w, m, v, grad; write w, m, v: 28 bytes an element.
SIEVE_GPU_BENCH(adamw_step) {
  for (const Shape& s : kShapes) {
    const int64_t n = s.R * s.K;
    const double bytes = (double)n * 28;
    const int sets = sets_for(bytes);
    std::vector<DeviceBuffer<float>> w, m, v, g;
    for (int i = 0; i < sets; i++) {
      w.push_back(random_buffer(n, 4000 + i, 0.02f));
      m.push_back(random_buffer(n, 5000 + i, 1e-3f));
      v.push_back(random_buffer(n, 6000 + i, 5e-7f, 1e-6f));  // a second moment is positive
      g.push_back(random_buffer(n, 7000 + i, 1e-2f));
    }
    int64_t t = 0;
    const double ms = gb::median_ms([&](int i) {
      const int k = i % sets;
      sieve::cuda::adamw_update(w[k].get(), m[k].get(), v[k].get(), g[k].get(), 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f,
                                ++t, n, 0);
    });
    b.row(bandwidth_row("", "AdamW step (fp32 w, m, v), " + shape_text(s), ms, bytes));
  }
}
