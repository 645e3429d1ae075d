// update_rule.cu — the optimizer updates and the global norm on the GPU (promises in
// update_rule.cuh; the rules are cpu/update_rule.cc's, held to its bits by
// test/gpu/update_rule_checks.cu).
//
// Exactness: nvcc contracts a * b + c into an FMA by default, which the CPU build forbids
// (-ffp-contract=off), so every operation of a rule is an explicit round-to-nearest
// intrinsic (__fmul_rn, __fadd_rn, __fsub_rn, __fdiv_rn, __fsqrt_rn), written in the order
// and association of the CPU's expression.
#include "update_rule.cuh"

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "reduce.cuh"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256;

// The host-side factors of a step, computed exactly as cpu/update_rule.cc does (double pow).
struct BiasCorrection {
  float step_size, bc2_sqrt;
};
BiasCorrection bias_correction(float lr, float beta1, float beta2, int64_t t) {
  return {(float)((double)lr / (1.0 - std::pow((double)beta1, (double)t))),
          (float)std::sqrt(1.0 - std::pow((double)beta2, (double)t))};
}

// ---- the rules: one element each; g is the gradient, k the mask (1 for AdamW)

__device__ __forceinline__ float momentum(float b1, float m, float g) {  // b1 m + (1 - b1) g
  return __fadd_rn(__fmul_rn(b1, m), __fmul_rn(__fsub_rn(1.0f, b1), g));
}
__device__ __forceinline__ float second_moment(float b2, float v, float u) {  // b2 v + ((1 - b2) u) u
  return __fadd_rn(__fmul_rn(b2, v), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), u), u));
}
__device__ __forceinline__ float adam_step(float step_size, float u, float v, float bc2_sqrt, float eps) {
  // (step_size u) / (sqrt(v) / bc2_sqrt + eps)
  return __fdiv_rn(__fmul_rn(step_size, u), __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), eps));
}

struct AdamW {
  float lr, b1, b2, eps, wd, step_size, bc2_sqrt;
  __device__ __forceinline__ void operator()(float& w, float& m, float& v, float g, float) const {
    const float mi = momentum(b1, m, g), vi = second_moment(b2, v, g);
    m = mi;
    v = vi;
    w = __fsub_rn(__fmul_rn(w, __fsub_rn(1.0f, __fmul_rn(lr, wd))), adam_step(step_size, mi, vi, bc2_sqrt, eps));
  }
};

struct Ast {
  float lr, b1, b2, eps, wd, lambda, step_size, bc2_sqrt;
  __device__ __forceinline__ void operator()(float& w, float& m, float& v, float g, float k) const {
    const float wi = __fmul_rn(w, __fsub_rn(1.0f, __fmul_rn(lr, wd)));  // decoupled weight decay first
    const float mi = momentum(b1, m, g);
    const float u = k == 1.0f ? mi : __fadd_rn(mi, __fmul_rn(__fmul_rn(lambda, __fsub_rn(1.0f, k)), wi));
    const float vi = second_moment(b2, v, u);
    m = mi;
    v = vi;
    w = __fsub_rn(wi, adam_step(step_size, u, vi, bc2_sqrt, eps));
  }
};

struct AdamS {
  float b1, b2, eps, alpha, lambda, step_size, bc2_sqrt;
  __device__ __forceinline__ void operator()(float& w, float& m, float& v, float g, float k) const {
    const float wi = w;
    const float mi = momentum(b1, m, g);  // raw-gradient momentum
    const float sign = wi > 0.0f ? 1.0f : wi < 0.0f ? -1.0f : 0.0f;
    const float u = k == 0.0f ? __fadd_rn(__fmul_rn(__fsub_rn(1.0f, alpha), mi), __fmul_rn(__fmul_rn(alpha, lambda), sign))
                              : mi;
    const float vi = second_moment(b2, v, u);
    m = mi;
    v = vi;
    w = __fsub_rn(wi, adam_step(step_size, u, vi, bc2_sqrt, eps));
  }
};

// One fused pass: read w, m, v, grad (and mask), write w, m, v. mask null reads as 1.
template <class Rule, bool kVec>
__global__ void __launch_bounds__(kThreads)
    update_kernel(float* __restrict__ w, float* __restrict__ m, float* __restrict__ v, const float* __restrict__ grad,
                  const float* __restrict__ mask, Rule rule, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x, first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (kVec) {
    for (int64_t q = first; q < n / 4; q += stride) {
      float4 W = reinterpret_cast<const float4*>(w)[q], M = reinterpret_cast<const float4*>(m)[q],
             V = reinterpret_cast<const float4*>(v)[q];
      const float4 G = reinterpret_cast<const float4*>(grad)[q];
      const float4 K = mask ? reinterpret_cast<const float4*>(mask)[q] : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
      rule(W.x, M.x, V.x, G.x, K.x);
      rule(W.y, M.y, V.y, G.y, K.y);
      rule(W.z, M.z, V.z, G.z, K.z);
      rule(W.w, M.w, V.w, G.w, K.w);
      reinterpret_cast<float4*>(w)[q] = W;
      reinterpret_cast<float4*>(m)[q] = M;
      reinterpret_cast<float4*>(v)[q] = V;
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) {
    float W = w[i], M = m[i], V = v[i];
    rule(W, M, V, grad[i], mask ? mask[i] : 1.0f);
    w[i] = W, m[i] = M, v[i] = V;
  }
}

template <class Rule>
void launch_update(float* w, float* m, float* v, const float* grad, const float* mask, const Rule& rule, int64_t n,
                   cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = aligned(w, 16) && aligned(m, 16) && aligned(v, 16) && aligned(grad, 16) && aligned(mask, 16);
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n, kThreads);
  if (vec)
    update_kernel<Rule, true><<<grid, kThreads, 0, stream>>>(w, m, v, grad, mask, rule, n);
  else
    update_kernel<Rule, false><<<grid, kThreads, 0, stream>>>(w, m, v, grad, mask, rule, n);
  SIEVE_LAUNCHED();
}

void check_step(const char* op, int64_t t, int64_t n) {
  SIEVE_CHECK(t >= 1 && n >= 0, "%s: step t = %lld (1-based) and n = %lld", op, (long long)t, (long long)n);
}

// ---- global norm: chunks of a fixed size, a fixed tree inside each, chunks by a fixed tree

constexpr int64_t kChunk = 1 << 14;

// A float squared is exact in double, so whether nvcc fuses the square into the add does
// not change a bit.
template <bool kVec>
__global__ void __launch_bounds__(kThreads) sum_squares_chunks(double* __restrict__ partial,
                                                               const float* __restrict__ x, int64_t n) {
  const int64_t c = blockIdx.x, i0 = c * kChunk, i1 = n < i0 + kChunk ? n : i0 + kChunk;
  double acc = 0;
  int64_t tail = i0;
  if constexpr (kVec) {
    for (int64_t i = i0 + 4 * (int64_t)threadIdx.x; i + 4 <= i1; i += 4 * (int64_t)blockDim.x) {
      const float4 q = *reinterpret_cast<const float4*>(x + i);
      acc += (double)q.x * (double)q.x + (double)q.y * (double)q.y + (double)q.z * (double)q.z +
             (double)q.w * (double)q.w;
    }
    tail = i0 + (i1 - i0) / 4 * 4;
  }
  for (int64_t i = tail + threadIdx.x; i < i1; i += blockDim.x) acc += (double)x[i] * (double)x[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[c] = acc;
}

__global__ void __launch_bounds__(kThreads) sum_squares_final(double* __restrict__ norm,
                                                              const double* __restrict__ partial, int64_t chunks) {
  double acc = 0;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) acc += partial[c];
  acc = block_sum(acc);
  if (threadIdx.x == 0) norm[0] = __dsqrt_rn(acc);
}

}  // namespace

void adamw_update(float* w, float* m, float* v, const float* grad, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t t, int64_t n, cudaStream_t stream) {
  check_step("adamw_update", t, n);
  const BiasCorrection bc = bias_correction(lr, beta1, beta2, t);
  launch_update(w, m, v, grad, nullptr, AdamW{lr, beta1, beta2, eps, weight_decay, bc.step_size, bc.bc2_sqrt}, n,
                stream);
}

void ast_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1, float beta2,
                float eps, float weight_decay, float lambda, int64_t t, int64_t n, cudaStream_t stream) {
  check_step("ast_update", t, n);
  const BiasCorrection bc = bias_correction(lr, beta1, beta2, t);
  launch_update(w, m, v, grad, mask, Ast{lr, beta1, beta2, eps, weight_decay, lambda, bc.step_size, bc.bc2_sqrt}, n,
                stream);
}

void adams_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1,
                  float beta2, float eps, float alpha, float lambda, int64_t t, int64_t n, cudaStream_t stream) {
  check_step("adams_update", t, n);
  const BiasCorrection bc = bias_correction(lr, beta1, beta2, t);
  launch_update(w, m, v, grad, mask, AdamS{beta1, beta2, eps, alpha, lambda, bc.step_size, bc.bc2_sqrt}, n, stream);
}

int64_t global_norm_scratch(int64_t n) { return (n + kChunk - 1) / kChunk; }

void global_norm(double* norm, const float* x, int64_t n, double* scratch, cudaStream_t stream) {
  SIEVE_CHECK(n >= 0, "global_norm: n = %lld", (long long)n);
  const int64_t chunks = global_norm_scratch(n);
  if (chunks > 0) {
    SIEVE_CHECK(chunks < (int64_t(1) << 31), "global_norm: n = %lld is too large", (long long)n);
    if (aligned(x, 16))
      sum_squares_chunks<true><<<(unsigned)chunks, kThreads, 0, stream>>>(scratch, x, n);
    else
      sum_squares_chunks<false><<<(unsigned)chunks, kThreads, 0, stream>>>(scratch, x, n);
    SIEVE_LAUNCHED();
  }
  sum_squares_final<<<1, kThreads, 0, stream>>>(norm, scratch, chunks);
  SIEVE_LAUNCHED();
}

}  // namespace sieve::cuda
