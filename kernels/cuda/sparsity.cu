// sparsity.cu — the 2:4 kernels of the CUDA backend (promises in sparsity.cuh; the rules are
// cpu/sparsity.cc's, which the checks in test/gpu/sparsity_checks.cu hold these to bit for bit).
//
// Exactness: every float or double operation below that the CPU also performs is written so
// nvcc cannot fuse it (the CPU is built with -ffp-contract=off): products that feed a sum
// go through __fmul_rn/__dmul_rn, and sums that follow a product through __fadd_rn/__dadd_rn.
// Sums of sums (the pattern scores) cannot be contracted and stay plain.
#include "sparsity.cuh"

#include <cstdint>
#include <utility>

#include "common.cuh"
#include "reduce.cuh"
#include "core/mvue.h"
#include "core/rng.h"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256;

// ---------------------------------------------------------------- device helpers

// |x|, with NaN ranked below every number: fmaxf returns the non-NaN operand.
__device__ __forceinline__ float rank_key(float x) { return fmaxf(fabsf(x), -1.0f); }

template <bool kVec>
__device__ __forceinline__ float4 load4(const float* p) {
  if constexpr (kVec) {
    return *reinterpret_cast<const float4*>(p);
  } else {
    return make_float4(p[0], p[1], p[2], p[3]);
  }
}

template <bool kVec>
__device__ __forceinline__ void store4(float* p, float4 v) {
  if constexpr (kVec) {
    __stcg(reinterpret_cast<float4*>(p), v);  // a plain store was split into 4 by the compiler
  } else {
    p[0] = v.x, p[1] = v.y, p[2] = v.z, p[3] = v.w;
  }
}

template <bool kVec>
__device__ __forceinline__ void store4_bf16(__nv_bfloat16* p, float4 v) {
  const __nv_bfloat16 b0 = __float2bfloat16_rn(v.x), b1 = __float2bfloat16_rn(v.y), b2 = __float2bfloat16_rn(v.z),
                      b3 = __float2bfloat16_rn(v.w);
  if constexpr (kVec) {
    const uint32_t lo = (uint32_t)__bfloat16_as_ushort(b0) | ((uint32_t)__bfloat16_as_ushort(b1) << 16);
    const uint32_t hi = (uint32_t)__bfloat16_as_ushort(b2) | ((uint32_t)__bfloat16_as_ushort(b3) << 16);
    __stcg(reinterpret_cast<uint2*>(p), make_uint2(lo, hi));
  } else {
    p[0] = b0, p[1] = b1, p[2] = b2, p[3] = b3;
  }
}

// The magnitude mask of one group: i beats j (i > j) iff key_i >= key_j (the tie goes to the
// higher index); keys are never NaN, so j beats i exactly when i does not beat j.
__device__ __forceinline__ float4 mask_of_group(float4 x) {
  const float k0 = rank_key(x.x), k1 = rank_key(x.y), k2 = rank_key(x.z), k3 = rank_key(x.w);
  const int b10 = k1 >= k0, b20 = k2 >= k0, b30 = k3 >= k0, b21 = k2 >= k1, b31 = k3 >= k1, b32 = k3 >= k2;
  const int wins0 = 3 - b10 - b20 - b30, wins1 = b10 + 2 - b21 - b31, wins2 = b20 + b21 + 1 - b32,
            wins3 = b30 + b31 + b32;
  return make_float4(wins0 >= 2 ? 1.0f : 0.0f, wins1 >= 2 ? 1.0f : 0.0f, wins2 >= 2 ? 1.0f : 0.0f,
                     wins3 >= 2 ? 1.0f : 0.0f);
}

// scale sign(a) max(m - t, 0), as cpu::sste_group writes it (std::max(d, 0) passes a NaN on).
__device__ __forceinline__ float sste_one(float m, float t, float a, float scale) {
  const float d = __fsub_rn(m, t);
  return __fmul_rn(scale, copysignf(d < 0.0f ? 0.0f : d, a));
}

// S(x) of one group times scale; NaN anywhere gives NaN everywhere (as the CPU's NAN).
__device__ __forceinline__ float4 sste_group(float4 x, float scale) {
  const float m0 = fabsf(x.x), m1 = fabsf(x.y), m2 = fabsf(x.z), m3 = fabsf(x.w);
  if (isnan(m0 + m1 + m2 + m3)) {
    const float nan = __int_as_float(0x7fc00000);
    return make_float4(nan, nan, nan, nan);
  }
  // the 2nd smallest of four, branch-free (METHODS 3.2); no NaN here, and no -0 after fabsf,
  // so fminf/fmaxf agree with std::min/std::max
  const float t = fminf(fmaxf(fminf(m0, m1), fminf(m2, m3)), fminf(fmaxf(m0, m1), fmaxf(m2, m3)));
  return make_float4(sste_one(m0, t, x.x, scale), sste_one(m1, t, x.y, scale), sste_one(m2, t, x.z, scale),
                     sste_one(m3, t, x.w, scale));
}

// ---------------------------------------------------------------- the 90 transposable patterns

struct Pattern24 {
  int pair[4];  // row r keeps the two columns of pair index pair[r]
  uint32_t bits;  // bit 4 r + c
};

// Pattern k in cpu/sparsity.cc's order: lexicographic in the rows' pairs, a row's pairs
// ordered (0,1) < (0,2) < (0,3) < (1,2) < (1,3) < (2,3). Evaluated at compile time only.
__host__ __device__ constexpr Pattern24 transposable_pattern(int k) {
  const int first[6] = {0, 0, 0, 1, 1, 2}, second[6] = {1, 2, 3, 2, 3, 3};
  int n = 0;
  for (int a = 0; a < 6; a++)
    for (int b = 0; b < 6; b++)
      for (int c = 0; c < 6; c++)
        for (int d = 0; d < 6; d++) {
          const int rows[4] = {a, b, c, d};
          int col[4] = {0, 0, 0, 0};
          uint32_t bits = 0;
          for (int r = 0; r < 4; r++) {
            col[first[rows[r]]]++;
            col[second[rows[r]]]++;
            bits |= (1u << (4 * r + first[rows[r]])) | (1u << (4 * r + second[rows[r]]));
          }
          if (col[0] != 2 || col[1] != 2 || col[2] != 2 || col[3] != 2) continue;
          if (n == k) return Pattern24{{a, b, c, d}, bits};
          n++;
        }
  return Pattern24{{0, 0, 0, 0}, 0};
}

static_assert(transposable_pattern(89).bits != 0 && transposable_pattern(90).bits == 0, "90 transposable patterns");

// One pattern of the scan: the indices are compile-time constants, so ps stays in registers
// and the shared prefixes ((p0 + p1), then + p2) are computed once across patterns.
template <int k>
__device__ __forceinline__ void consider(const float (&ps)[4][6], float& best, uint32_t& bits) {
  constexpr Pattern24 p = transposable_pattern(k);
  const float s = ((ps[0][p.pair[0]] + ps[1][p.pair[1]]) + ps[2][p.pair[2]]) + ps[3][p.pair[3]];
  const bool better = s > best;  // strict: a tie keeps the earlier pattern
  best = better ? s : best;
  bits = better ? p.bits : bits;
}

// Scores are finite or +inf (keys >= -1), so pattern 0 always beats the -inf start, as the
// CPU's "best = score of pattern 0" does.
template <int... ks>
__device__ __forceinline__ uint32_t best_pattern(const float (&ps)[4][6], std::integer_sequence<int, ks...>) {
  float best = -__int_as_float(0x7f800000);
  uint32_t bits = 0;
  (consider<ks>(ps, best, bits), ...);
  return bits;
}

__device__ __forceinline__ float bit_as_float(uint32_t bits, int i) { return (bits >> i) & 1u ? 1.0f : 0.0f; }

// ---------------------------------------------------------------- kernels

template <bool kVec>
__global__ void __launch_bounds__(kThreads) mask24_magnitude_kernel(float* __restrict__ mask,
                                                                    const float* __restrict__ w, int64_t groups) {
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x)
    store4<kVec>(mask + 4 * g, mask_of_group(load4<kVec>(w + 4 * g)));
}

// Threads (x, y) = (block column j, band i): a warp reads 32 consecutive 16-byte pieces of
// each of a band's 4 rows.
constexpr int kBlockCols = 64, kBlockBands = 4;

template <bool kVec>
__global__ void __launch_bounds__(kBlockCols* kBlockBands)
    mask24_transposable_kernel(float* __restrict__ mask, const float* __restrict__ w, int64_t bands, int64_t nb,
                               int64_t K) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= nb) return;
  for (int64_t i = blockIdx.y * (int64_t)blockDim.y + threadIdx.y; i < bands; i += (int64_t)gridDim.y * blockDim.y) {
    const float* src = w + 4 * i * K + 4 * j;
    float ps[4][6];  // row r's pair sums, pairs in kPair order
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const float4 x = load4<kVec>(src + r * K);
      const float k0 = rank_key(x.x), k1 = rank_key(x.y), k2 = rank_key(x.z), k3 = rank_key(x.w);
      ps[r][0] = k0 + k1, ps[r][1] = k0 + k2, ps[r][2] = k0 + k3;
      ps[r][3] = k1 + k2, ps[r][4] = k1 + k3, ps[r][5] = k2 + k3;
    }
    const uint32_t bits = best_pattern(ps, std::make_integer_sequence<int, 90>{});
    float* dst = mask + 4 * i * K + 4 * j;
#pragma unroll
    for (int r = 0; r < 4; r++)
      store4<kVec>(dst + r * K, make_float4(bit_as_float(bits, 4 * r), bit_as_float(bits, 4 * r + 1),
                                             bit_as_float(bits, 4 * r + 2), bit_as_float(bits, 4 * r + 3)));
  }
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    sste_threshold_kernel(float* __restrict__ out, __nv_bfloat16* __restrict__ out_bf16, float* __restrict__ mask,
                          const float* __restrict__ w, float scale, int64_t groups) {
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const float4 x = load4<kVec>(w + 4 * g);
    const float4 y = sste_group(x, scale);
    if (out) store4<kVec>(out + 4 * g, y);
    if (out_bf16) store4_bf16<kVec>(out_bf16 + 4 * g, y);
    if (mask) store4<kVec>(mask + 4 * g, mask_of_group(x));
  }
}

// ---- deterministic reductions: a fixed tree per block (shuffles, then one warp)

// Elements per block of the first pass of sste_dots (a multiple of 4).
constexpr int64_t kReduceChunk = 1 << 14;

template <bool kVec>
__global__ void __launch_bounds__(kThreads) sste_dots_chunks(double* __restrict__ partial, const float* __restrict__ w,
                                                             int64_t n) {
  const int64_t c = blockIdx.x, i0 = c * kReduceChunk, i1 = n < i0 + kReduceChunk ? n : i0 + kReduceChunk;
  double ws = 0, ss = 0;
  for (int64_t i = i0 + 4 * (int64_t)threadIdx.x; i < i1; i += 4 * (int64_t)blockDim.x) {
    const float4 x = load4<kVec>(w + i);
    const float4 s = sste_group(x, 1.0f);
    // a float times a float is exact in double, so a fused multiply-add rounds like add alone
    ws += (double)x.x * (double)s.x + (double)x.y * (double)s.y + (double)x.z * (double)s.z + (double)x.w * (double)s.w;
    ss += (double)s.x * (double)s.x + (double)s.y * (double)s.y + (double)s.z * (double)s.z + (double)s.w * (double)s.w;
  }
  ws = block_sum(ws);
  ss = block_sum(ss);
  if (threadIdx.x == 0) partial[2 * c] = ws, partial[2 * c + 1] = ss;
}

__global__ void __launch_bounds__(kThreads) sste_dots_final(double* __restrict__ dots,
                                                            const double* __restrict__ partial, int64_t chunks) {
  double ws = 0, ss = 0;
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) ws += partial[2 * c], ss += partial[2 * c + 1];
  ws = block_sum(ws);
  ss = block_sum(ss);
  if (threadIdx.x == 0) dots[0] = ws, dots[1] = ss;
}

// mask * w, as cpu/transform.cc's MASK transform multiplies (a product of two floats: no
// contraction to fear, __fmul_rn only states it).
template <bool kVec>
__global__ void __launch_bounds__(kThreads)
    masked_weight_kernel(float* __restrict__ out, __nv_bfloat16* __restrict__ out_bf16, const float* __restrict__ w,
                         const float* __restrict__ mask, int64_t n) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x, first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (kVec) {
    for (int64_t q = first; q < n / 4; q += stride) {
      const float4 x = load4<true>(w + 4 * q), m = load4<true>(mask + 4 * q);
      const float4 y = make_float4(__fmul_rn(m.x, x.x), __fmul_rn(m.y, x.y), __fmul_rn(m.z, x.z), __fmul_rn(m.w, x.w));
      if (out) store4<true>(out + 4 * q, y);
      if (out_bf16) store4_bf16<true>(out_bf16 + 4 * q, y);
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) {
    const float y = __fmul_rn(mask[i], w[i]);
    if (out) out[i] = y;
    if (out_bf16) out_bf16[i] = __float2bfloat16_rn(y);
  }
}

template <bool kVec>
__global__ void __launch_bounds__(kThreads) masked_decay_kernel(float* __restrict__ grad, const float* __restrict__ w,
                                                                const float* __restrict__ mask, float lambda,
                                                                int64_t n) {
  // g + 0 would turn -0 into +0: kept entries (mask == 1) keep their bits.
  auto one = [lambda](float g, float w, float m) {
    return m == 1.0f ? g : __fadd_rn(g, __fmul_rn(__fmul_rn(lambda, __fsub_rn(1.0f, m)), w));
  };
  const int64_t stride = (int64_t)gridDim.x * blockDim.x, first = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (kVec) {
    for (int64_t q = first; q < n / 4; q += stride) {
      float4 g = load4<true>(grad + 4 * q);
      const float4 x = load4<true>(w + 4 * q), m = load4<true>(mask + 4 * q);
      g = make_float4(one(g.x, x.x, m.x), one(g.y, x.y, m.y), one(g.z, x.z, m.z), one(g.w, x.w, m.w));
      store4<true>(grad + 4 * q, g);
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) grad[i] = one(grad[i], w[i], mask[i]);
}

// ---- MVUE: core/mvue.h's estimator with core/rng.h's draws, the CPU's code on the device

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// Threads: x over columns d (coalesced within each row), y over groups q. Out is fp32, or bf16
// rounded to nearest even (the weight-gradient GEMM's operand, written without an fp32 pass).
template <class Out>
__global__ void __launch_bounds__(kThreads) mvue24_kernel(Out* __restrict__ out, const float* __restrict__ g,
                                                          int64_t N, int64_t D, int64_t ldo, int64_t ldg,
                                                          uint64_t seed) {
  const int64_t d = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (d >= D) return;
  const uint64_t key = mvue_column_key(seed, d);
  const int64_t groups = N / 4;
  for (int64_t q = blockIdx.y; q < (N + 3) / 4; q += gridDim.y) {
    if (q == groups) {  // a trailing partial group is kept as it is
      for (int64_t r = 4 * q; r < N; r++) store(&out[r * ldo + d], g[r * ldg + d]);
      continue;
    }
    float x[4], y[4];
#pragma unroll
    for (int i = 0; i < 4; i++) x[i] = g[(4 * q + i) * ldg + d];
    mvue24_group(y, x, stream_draw(key, (uint64_t)q));
#pragma unroll
    for (int i = 0; i < 4; i++) store(&out[(4 * q + i) * ldo + d], y[i]);
  }
}

// ---- counts: per-block sums, one integer atomic per block (integer addition is exact in any order)

__device__ __forceinline__ void add_count(int64_t* out, unsigned long long c) {
  c = block_sum(c);
  if (threadIdx.x == 0 && c) atomicAdd(reinterpret_cast<unsigned long long*>(out), c);
}

__global__ void __launch_bounds__(kThreads) mask_flips_kernel(int64_t* out, const float* __restrict__ before,
                                                              const float* __restrict__ after, int64_t n) {
  unsigned long long c = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    c += !(before[i] == after[i]);
  add_count(out, c);
}

__global__ void __launch_bounds__(kThreads) count24_rows_kernel(int64_t* out, const float* __restrict__ w,
                                                                int64_t groups) {
  unsigned long long c = 0;
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const float* x = w + 4 * g;
    c += ((x[0] != 0.0f) + (x[1] != 0.0f) + (x[2] != 0.0f) + (x[3] != 0.0f)) > 2;
  }
  add_count(out, c);
}

__global__ void __launch_bounds__(kThreads) count24_cols_kernel(int64_t* out, const float* __restrict__ w,
                                                                int64_t bands, int64_t K) {
  unsigned long long c = 0;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < bands * K; e += (int64_t)gridDim.x * blockDim.x) {
    const float* x = w + 4 * (e / K) * K + e % K;
    c += ((x[0] != 0.0f) + (x[K] != 0.0f) + (x[2 * K] != 0.0f) + (x[3 * K] != 0.0f)) > 2;
  }
  add_count(out, c);
}

void check_rk(const char* op, int64_t R, int64_t K, bool rows_by_4) {
  SIEVE_CHECK(R >= 0 && K >= 0 && K % 4 == 0 && (!rows_by_4 || R % 4 == 0),
              "%s: the shape (%lld, %lld) needs K %% 4 == 0%s", op, (long long)R, (long long)K,
              rows_by_4 ? " and R % 4 == 0" : "");
}

// A segment's scale is A[i / seg] for flat index i: row r's segments are consecutive in A.
__global__ void __launch_bounds__(kThreads)
    weight_scale_kernel(float* __restrict__ out, __nv_bfloat16* __restrict__ out_bf16, const float* __restrict__ w,
                        const float* __restrict__ scale, int64_t n, int64_t seg) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float y = __fmul_rn(scale[i / seg], w[i]);
    if (out) out[i] = y;
    if (out_bf16) out_bf16[i] = __float2bfloat16_rn(y);
  }
}

// One warp per segment: its lanes stride the segment (coalesced), each sums in double, then the
// warp adds the 32 partial sums in a fixed tree.
__global__ void __launch_bounds__(kThreads)
    weight_scale_backward_kernel(float* __restrict__ dw, float* __restrict__ dscale, const float* __restrict__ dwt,
                                 const float* __restrict__ w, const float* __restrict__ scale, int64_t segments,
                                 int64_t seg) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = (int64_t)gridDim.x * blockDim.x / 32;
  for (int64_t g = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32; g < segments; g += warps) {
    const float a = scale[g];
    double acc = 0.0;
    for (int64_t c = g * seg + lane; c < (g + 1) * seg; c += 32) {
      dw[c] = __fadd_rn(dw[c], __fmul_rn(a, dwt[c]));
      acc = __dadd_rn(acc, __dmul_rn((double)dwt[c], (double)w[c]));
    }
    acc = warp_sum(acc);
    if (lane == 0) dscale[g] = __fadd_rn(dscale[g], (float)acc);
  }
}

// One thread per (d, i), its k terms in the CPU's order; the products and sums rounded one at a
// time (no fused multiply-add) as the CPU's double arithmetic is.
__global__ void slorb_init_mean_kernel(float* s, const float* w, const float* mask, int64_t R, int64_t K, int64_t k) {
  const int64_t r = K / k;
  for (int64_t at = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; at < R * r; at += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = at / r, i = at % r;
    double acc = 0;
    for (int64_t j = i * k; j < (i + 1) * k; j++) {
      const double pruned = 1.0 - (mask ? (double)mask[d * K + j] : 1.0);
      acc = __dadd_rn(acc, __dmul_rn((double)w[d * K + j], pruned));
    }
    s[at] = (float)(acc / (double)k);
  }
}

}  // namespace

uint16_t transposable_pattern_bits(int k) {
  SIEVE_CHECK(k >= 0 && k < 90, "transposable_pattern_bits: k = %d is not in [0, 90)", k);
  return (uint16_t)transposable_pattern(k).bits;
}

// ---------------------------------------------------------------- launchers

void mask24_magnitude(float* mask, const float* w, int64_t R, int64_t K, cudaStream_t stream) {
  check_rk("mask24_magnitude", R, K, false);
  const int64_t groups = R * K / 4;
  if (groups == 0) return;
  const unsigned grid = grid_for(groups, kThreads);
  if (aligned(mask, 16) && aligned(w, 16))
    mask24_magnitude_kernel<true><<<grid, kThreads, 0, stream>>>(mask, w, groups);
  else
    mask24_magnitude_kernel<false><<<grid, kThreads, 0, stream>>>(mask, w, groups);
  SIEVE_LAUNCHED();
}

void mask24_transposable(float* mask, const float* w, int64_t R, int64_t K, cudaStream_t stream) {
  check_rk("mask24_transposable", R, K, true);
  const int64_t bands = R / 4, nb = K / 4;
  if (bands == 0 || nb == 0) return;
  const dim3 block(kBlockCols, kBlockBands);
  const int64_t gy = (bands + kBlockBands - 1) / kBlockBands;
  const dim3 grid((unsigned)((nb + kBlockCols - 1) / kBlockCols), (unsigned)(gy < 65535 ? gy : 65535));
  if (aligned(mask, 16) && aligned(w, 16))
    mask24_transposable_kernel<true><<<grid, block, 0, stream>>>(mask, w, bands, nb, K);
  else
    mask24_transposable_kernel<false><<<grid, block, 0, stream>>>(mask, w, bands, nb, K);
  SIEVE_LAUNCHED();
}

void sste_threshold(float* out, __nv_bfloat16* out_bf16, float* mask, const float* w, float scale, int64_t n,
                    cudaStream_t stream) {
  SIEVE_CHECK(n >= 0 && n % 4 == 0, "sste_threshold: n = %lld is not a multiple of 4", (long long)n);
  const int64_t groups = n / 4;
  if (groups == 0 || (!out && !out_bf16 && !mask)) return;
  const unsigned grid = grid_for(groups, kThreads);
  const bool vec = aligned(w, 16) && aligned(out, 16) && aligned(mask, 16) && aligned(out_bf16, 8);
  if (vec)
    sste_threshold_kernel<true><<<grid, kThreads, 0, stream>>>(out, out_bf16, mask, w, scale, groups);
  else
    sste_threshold_kernel<false><<<grid, kThreads, 0, stream>>>(out, out_bf16, mask, w, scale, groups);
  SIEVE_LAUNCHED();
}

int64_t sste_dots_scratch(int64_t n) { return 2 * ((n + kReduceChunk - 1) / kReduceChunk); }

void sste_dots(double* dots, const float* w, int64_t n, double* scratch, cudaStream_t stream) {
  SIEVE_CHECK(n >= 0 && n % 4 == 0, "sste_dots: n = %lld is not a multiple of 4", (long long)n);
  const int64_t chunks = (n + kReduceChunk - 1) / kReduceChunk;
  if (chunks > 0) {
    SIEVE_CHECK(chunks < (int64_t(1) << 31), "sste_dots: n = %lld is too large", (long long)n);
    if (aligned(w, 16))
      sste_dots_chunks<true><<<(unsigned)chunks, kThreads, 0, stream>>>(scratch, w, n);
    else
      sste_dots_chunks<false><<<(unsigned)chunks, kThreads, 0, stream>>>(scratch, w, n);
    SIEVE_LAUNCHED();
  }
  sste_dots_final<<<1, kThreads, 0, stream>>>(dots, scratch, chunks);
  SIEVE_LAUNCHED();
}

void masked_weight(float* out, __nv_bfloat16* out_bf16, const float* w, const float* mask, int64_t n,
                   cudaStream_t stream) {
  SIEVE_CHECK(n >= 0, "masked_weight: n = %lld", (long long)n);
  if (n == 0 || (!out && !out_bf16)) return;
  const bool vec = aligned(out, 16) && aligned(out_bf16, 8) && aligned(w, 16) && aligned(mask, 16);
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n, kThreads);
  if (vec)
    masked_weight_kernel<true><<<grid, kThreads, 0, stream>>>(out, out_bf16, w, mask, n);
  else
    masked_weight_kernel<false><<<grid, kThreads, 0, stream>>>(out, out_bf16, w, mask, n);
  SIEVE_LAUNCHED();
}

void masked_decay(float* grad, const float* w, const float* mask, float lambda, int64_t n, cudaStream_t stream) {
  SIEVE_CHECK(n >= 0, "masked_decay: n = %lld", (long long)n);
  if (n == 0) return;
  const bool vec = aligned(grad, 16) && aligned(w, 16) && aligned(mask, 16);
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n, kThreads);
  if (vec)
    masked_decay_kernel<true><<<grid, kThreads, 0, stream>>>(grad, w, mask, lambda, n);
  else
    masked_decay_kernel<false><<<grid, kThreads, 0, stream>>>(grad, w, mask, lambda, n);
  SIEVE_LAUNCHED();
}

void weight_scale(float* out, __nv_bfloat16* out_bf16, const float* w, const float* scale, int64_t R, int64_t K,
                  int64_t SG, cudaStream_t stream) {
  SIEVE_CHECK(R >= 0 && K >= 0 && SG > 0 && K % SG == 0, "weight_scale: the shape (%lld, %lld) needs K %% SG == 0 (SG = %lld)",
              (long long)R, (long long)K, (long long)SG);
  if (R * K == 0 || (!out && !out_bf16)) return;
  weight_scale_kernel<<<grid_for(R * K, kThreads), kThreads, 0, stream>>>(out, out_bf16, w, scale, R * K, K / SG);
  SIEVE_LAUNCHED();
}

void weight_scale_backward(float* dw, float* dscale, const float* dwt, const float* w, const float* scale, int64_t R,
                           int64_t K, int64_t SG, cudaStream_t stream) {
  SIEVE_CHECK(R >= 0 && K >= 0 && SG > 0 && K % SG == 0,
              "weight_scale_backward: the shape (%lld, %lld) needs K %% SG == 0 (SG = %lld)", (long long)R, (long long)K,
              (long long)SG);
  if (R * K == 0) return;
  weight_scale_backward_kernel<<<grid_for(R * SG * 32, kThreads), kThreads, 0, stream>>>(dw, dscale, dwt, w, scale,
                                                                                          R * SG, K / SG);
  SIEVE_LAUNCHED();
}

namespace {

template <class Out>
void launch_mvue24(Out* out, const float* g, int64_t N, int64_t D, int64_t ldo, int64_t ldg, uint64_t seed,
                   cudaStream_t stream) {
  SIEVE_CHECK(N >= 0 && D >= 0 && ldo >= D && ldg >= D, "mvue24: N = %lld, D = %lld, ldo = %lld, ldg = %lld",
              (long long)N, (long long)D, (long long)ldo, (long long)ldg);
  if (N == 0 || D == 0) return;
  const int64_t qs = (N + 3) / 4;
  const dim3 grid((unsigned)((D + kThreads - 1) / kThreads), (unsigned)(qs < 65535 ? qs : 65535));
  mvue24_kernel<<<grid, kThreads, 0, stream>>>(out, g, N, D, ldo, ldg, seed);
  SIEVE_LAUNCHED();
}

}  // namespace

void mvue24(float* out, const float* g, int64_t N, int64_t D, int64_t ldo, int64_t ldg, uint64_t seed,
            cudaStream_t stream) {
  launch_mvue24(out, g, N, D, ldo, ldg, seed, stream);
}

void mvue24(__nv_bfloat16* out, const float* g, int64_t N, int64_t D, int64_t ldo, int64_t ldg, uint64_t seed,
            cudaStream_t stream) {
  launch_mvue24(out, g, N, D, ldo, ldg, seed, stream);
}

void slorb_init_mean(float* s, const float* w, const float* mask, int64_t R, int64_t K, int64_t k,
                     cudaStream_t stream) {
  SIEVE_CHECK(R >= 0 && k >= 1 && K % k == 0, "slorb_init_mean: R = %lld, K = %lld, k = %lld", (long long)R,
              (long long)K, (long long)k);
  if (R == 0 || K == 0) return;
  slorb_init_mean_kernel<<<grid_for(R * (K / k), kThreads), kThreads, 0, stream>>>(s, w, mask, R, K, k);
  SIEVE_LAUNCHED();
}

void mask_flips(int64_t* flips, const float* before, const float* after, int64_t n, cudaStream_t stream) {
  SIEVE_CHECK(n >= 0, "mask_flips: n = %lld", (long long)n);
  SIEVE_CUDA(cudaMemsetAsync(flips, 0, sizeof(int64_t), stream));
  if (n == 0) return;
  mask_flips_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(flips, before, after, n);
  SIEVE_LAUNCHED();
}

void count24_along_rows(int64_t* groups, const float* w, int64_t R, int64_t K, cudaStream_t stream) {
  check_rk("count24_along_rows", R, K, false);
  SIEVE_CUDA(cudaMemsetAsync(groups, 0, sizeof(int64_t), stream));
  const int64_t n = R * K / 4;
  if (n == 0) return;
  count24_rows_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(groups, w, n);
  SIEVE_LAUNCHED();
}

void count24_along_cols(int64_t* groups, const float* w, int64_t R, int64_t K, cudaStream_t stream) {
  SIEVE_CHECK(R >= 0 && K >= 0 && R % 4 == 0, "count24_along_cols: the shape (%lld, %lld) needs R %% 4 == 0",
              (long long)R, (long long)K);
  SIEVE_CUDA(cudaMemsetAsync(groups, 0, sizeof(int64_t), stream));
  const int64_t n = R / 4 * K;
  if (n == 0) return;
  count24_cols_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(groups, w, R / 4, K);
  SIEVE_LAUNCHED();
}

}  // namespace sieve::cuda
