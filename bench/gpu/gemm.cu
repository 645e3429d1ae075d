// gemm.cu — targets G1 and G2 (DESIGN.md): our 2:4 GEMM (cuSPARSELt, cuda/sparse_gemm.cuh) against
// our dense GEMM (cuBLASLt, cuda/gemm.cuh), bf16, at M = 16384 tokens and the FFN shapes of
// GPT-2 small/medium (G2) and LLaMA-7B/70B (G1): out (M, N) = X (M, K) W^T, W (N, K) 2:4 along K.
// Each row also gives the cost of compressing W once, which a training step pays whenever the
// weight changes: by our compress24 where SparseLinear verified it ("own compression" 1), and by
// cuSPARSELt's compression kernel. TFLOP/s count 2 M N K for both products (the 2:4 figure is dense-equivalent).
// torch_reference.py measures torch's paths for the same rows ("what" matches).
//
// Method: bench.h's median of CUDA-event timings after warm-up. Inputs are random and never zero.
// Where one set of operands fits in L2 (the GPT-2 shapes), successive repetitions rotate among
// enough sets (each with its own 2:4 layer) to read about 3 L2s of operands, so every repetition
// reads its operands from memory as a training step would.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "bench.h"
#include "cuda/device_buffer.cuh"
#include "cuda/gemm.cuh"
#include "cuda/sparse_gemm.cuh"

namespace {

using bf16 = __nv_bfloat16;
using sieve::cuda::Blas;
using sieve::cuda::DeviceBuffer;
using sieve::cuda::SparseAlgo;
using sieve::cuda::SparseLinear;
using sieve::cuda::SparseLt;
using sieve::cuda::SparseWeightGrad;
using sieve::gpu_bench::median_ms;

__device__ uint64_t mix64(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// p[i] = scale * (+-[0.25, 1)), random sign and magnitude: never zero.
__global__ void fill_kernel(bf16* p, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t h = mix64(seed ^ mix64((uint64_t)i));
    const float u = (float)(h >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2bfloat16(scale * ((h & 1) ? 1.0f : -1.0f) * (0.25f + 0.75f * u));
  }
}

// Zeroes two of every four values `stride` apart (1: consecutive values; a matrix's width: four
// consecutive rows of a column, MVUE's pattern), keeping one of the six 2-of-4 patterns at random.
__global__ void prune24_kernel(bf16* w, int64_t groups, int64_t stride, uint64_t seed) {
  const unsigned char keep[6] = {0x3, 0x5, 0x9, 0x6, 0xa, 0xc};
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const unsigned k = keep[mix64(seed ^ mix64((uint64_t)g)) % 6];
    const int64_t first = g / stride * 4 * stride + g % stride;
    for (int j = 0; j < 4; j++)
      if (!(k >> j & 1)) w[first + j * stride] = __float2bfloat16(0.0f);
  }
}

void fill(DeviceBuffer<bf16>& p, uint64_t seed, float scale) {
  fill_kernel<<<sieve::cuda::grid_for(p.size(), 256), 256>>>(p.get(), p.size(), seed, scale);
  SIEVE_LAUNCHED();
}

struct Shape {
  const char* target;
  const char* model;
  int64_t K, N;
};

// Keep in step with torch_reference.py's GEMM_SHAPES.
const Shape kShapes[] = {
    {"G2", "GPT-2 small FFN up", 768, 3072},    {"G2", "GPT-2 small FFN down", 3072, 768},
    {"G2", "GPT-2 medium FFN up", 1024, 4096},  {"G2", "GPT-2 medium FFN down", 4096, 1024},
    {"G1", "LLaMA-7B FFN up", 4096, 11008},     {"G1", "LLaMA-7B FFN down", 11008, 4096},
    {"G1", "LLaMA-70B FFN up", 8192, 28672},    {"G1", "LLaMA-70B FFN down", 28672, 8192},
};
constexpr int64_t kTokens = 16384;

}  // namespace

SIEVE_GPU_BENCH(gemm_24_vs_dense) {
  int l2 = 0;
  SIEVE_CUDA(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  Blas blas;
  SparseLt lt;
  const int v = lt.version();
  char what[160];
  snprintf(what, sizeof what, "cuSPARSELt 0.%d.%d loaded", v / 100, v % 100);
  b.row({"", what, {{"version", (double)v}}});

  const int64_t M = kTokens;
  for (const Shape& s : kShapes) {
    const int64_t K = s.K, N = s.N;
    const double operand_bytes = 2.0 * (double)(M * K + N * K);
    const int sets = (int)std::clamp(std::ceil(3.0 * l2 / operand_bytes), 1.0, 16.0);
    std::vector<DeviceBuffer<bf16>> X, W;
    std::vector<std::unique_ptr<SparseLinear>> searched, plain;
    for (int k = 0; k < sets; k++) {
      X.emplace_back(M * K);
      fill(X.back(), 1000 + k, 1.0f);
      W.emplace_back(N * K);
      fill(W.back(), 2000 + k, 1.0f / std::sqrt((float)K));
      prune24_kernel<<<sieve::cuda::grid_for(N * K / 4, 256), 256>>>(W.back().get(), N * K / 4, 1, 3000 + k);
      SIEVE_LAUNCHED();
      searched.push_back(std::make_unique<SparseLinear>(lt, N, K, false, SparseAlgo::search));
      plain.push_back(std::make_unique<SparseLinear>(lt, N, K, false, SparseAlgo::default_id));
    }
    DeviceBuffer<bf16> out(M * N);
    // compress and plan (with the search) every layer before anything is timed
    for (int k = 0; k < sets; k++) {
      searched[k]->forward(out.get(), X[k].get(), W[k].get(), 1, M, false, nullptr);
      plain[k]->forward(out.get(), X[k].get(), W[k].get(), 1, M, false, nullptr);
    }
    SIEVE_CUDA(cudaDeviceSynchronize());

    const double dense = median_ms([&](int i) {
      const int k = i % sets;
      blas.gemm(false, true, M, N, K, 1.0f, X[k].get(), K, W[k].get(), K, 0.0f, out.get(), N, nullptr);
    });
    const double sparse = median_ms([&](int i) {
      const int k = i % sets;
      searched[k]->forward(out.get(), X[k].get(), W[k].get(), 1, M, false, nullptr);
    });
    const double sparse_default = median_ms([&](int i) {
      const int k = i % sets;
      plain[k]->forward(out.get(), X[k].get(), W[k].get(), 1, M, false, nullptr);
    });
    // a new version every call, so every call compresses: ours (compress24, where verified) and cuSPARSELt's
    const double compress = median_ms([&](int i) { searched[0]->prepare(W[0].get(), 100 + (uint64_t)i, nullptr); }, 3,
                                      20);
    SparseLinear lib(lt, N, K, false, SparseAlgo::default_id, sieve::cuda::Compression::cusparselt);
    const double compress_lib = median_ms([&](int i) { lib.prepare(W[0].get(), 100 + (uint64_t)i, nullptr); }, 3, 20);
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    snprintf(what, sizeof what, "M=%lld K=%lld N=%lld (%s)", (long long)M, (long long)K, (long long)N, s.model);
    b.row({s.target,
           what,
           {{"ms dense", dense},
            {"ms 2:4", sparse},
            {"ms 2:4 default alg", sparse_default},
            {"TFLOP/s dense", flops / (dense * 1e9)},
            {"TFLOP/s 2:4", flops / (sparse * 1e9)},
            {"vs dense", dense / sparse},
            {"vs dense default alg", dense / sparse_default},
            {"ms compress", compress},
            {"ms compress cuSPARSELt", compress_lib},
            {"own compression", searched[0]->own_compression(false) ? 1.0 : 0.0},
            {"alg", (double)searched[0]->algorithm(M, false)},
            {"sets", (double)sets}}});
  }
}

// The weight-gradient product of the same layers, dW (N, K) += dZ^T X with dZ (M, N) 2:4 along the
// M tokens (MVUE's pattern): cuBLASLt accumulating into the fp32 gradient, as the model's dense
// path does, against SparseWeightGrad, which compresses dZ on every call (it changes every
// micro-step) and writes a bf16 dW (the model then adds it to the fp32 gradient: not timed here).
SIEVE_GPU_BENCH(gemm_24_weight_grad) {
  Blas blas;
  SparseLt lt;
  const int64_t M = kTokens;
  char what[160];
  for (const Shape& s : kShapes) {
    const int64_t K = s.K, N = s.N;
    DeviceBuffer<bf16> X(M * K), Z(M * N), dw(N * K);
    fill(X, 4000, 1.0f);
    fill(Z, 5000, 1.0f);
    prune24_kernel<<<sieve::cuda::grid_for(M / 4 * N, 256), 256>>>(Z.get(), M / 4 * N, N, 6000);
    SIEVE_LAUNCHED();
    DeviceBuffer<float> grad(N * K);
    SIEVE_CUDA(cudaMemset(grad.get(), 0, sizeof(float) * (size_t)(N * K)));
    SparseWeightGrad product(lt, N, K, SparseAlgo::search);
    product.multiply(dw.get(), Z.get(), X.get(), M, nullptr);  // plans and searches before timing
    SIEVE_CUDA(cudaDeviceSynchronize());
    const double dense = median_ms([&](int) {
      blas.gemm(true, false, N, K, M, 1.0f, Z.get(), N, X.get(), K, 1.0f, grad.get(), K, nullptr);
    });
    const double sparse = median_ms([&](int) { product.multiply(dw.get(), Z.get(), X.get(), M, nullptr); });
    const double flops = 2.0 * (double)M * (double)N * (double)K;
    snprintf(what, sizeof what, "dW (%lld, %lld) over %lld tokens (%s)", (long long)N, (long long)K, (long long)M,
             s.model);
    b.row({s.target,
           what,
           {{"ms dense fp32 +=", dense},
            {"ms 2:4 incl. compression", sparse},
            {"TFLOP/s dense", flops / (dense * 1e9)},
            {"TFLOP/s 2:4", flops / (sparse * 1e9)},
            {"vs dense", dense / sparse},
            {"own compression", product.own_compression(M) ? 1.0 : 0.0},
            {"alg", (double)product.algorithm(M)}}});
  }
}
