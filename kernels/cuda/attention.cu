// attention.cu — fused causal attention, forward and backward (promises in attention.cuh; the
// checks in test/gpu/attention_checks.cu hold it to cpu/attention.cc).
//
// FlashAttention-2's scheme in fp32 on CUDA cores. Every kernel is a block of 256 threads seen
// as a 16 x 16 grid (ty, tx) over a tile of BM rows x BN columns: thread (ty, tx) owns rows
// ty RM .. ty RM + RM - 1 (RM = BM / 16) and columns tx + 16 j (j < BN / 16) of a score tile,
// and the same rows times D / 16 head columns (dcol) of an output accumulator. The 16 threads
// of a row group are one half-warp, so row maxima and sums are xor-shuffles within it.
//   forward:  one block per (query tile, b h); loops over key tiles up to the diagonal with
//             the online softmax; writes out and lse = m + log(l).
//   backward: a pre-pass D = rowsum(dO (.) O) (FA-2's delta, equal to the CPU's rowsum(P (.) dP));
//             one block per (key tile, b h) loops over query tiles from the diagonal and
//             accumulates dK, dV; one block per (query tile, b h) loops over key tiles up to
//             the diagonal and accumulates dQ. Both recompute P = exp(scale S - lse).
// Splitting dQ from dK/dV costs S and dP twice but needs no atomics: each output element is
// summed by one thread in a fixed order, so the bits never depend on scheduling.
//
// The head size is padded with zeros to D in {16, 32, 64, 128} (template), which changes no dot
// product; rows past T are loaded as zeros and masked out of P. Shared tiles have a row stride
// of D + 4 (or BN + 4) floats: threads reading 8 consecutive rows as float4s then hit 8
// distinct groups of 4 banks.
//
// The bf16 path (AttentionMath::bf16, D in {64, 128}; section "bf16 tensor cores") keeps this
// scheme, blocks, masks and (ty, tx) thread grid for everything between the products, and runs
// the products themselves as WMMA bf16 fragments with fp32 accumulators on 64 x 64 tiles.
#include "attention.cuh"

#include <mma.h>

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "reduce.cuh"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256;

bool aligned(const void* p, uintptr_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

// Head column of a thread's j-th accumulator column (j < D / 16). From D = 64 up a thread owns
// runs of 4 consecutive columns, read from shared memory as one float4.
template <int D>
__device__ __forceinline__ int dcol(int tx, int j) {
  if constexpr (D >= 64) {
    return (j / 4) * 64 + tx * 4 + (j % 4);
  } else {
    return j * 16 + tx;
  }
}

// Rows [r0, r0 + ROWS) of a head's (T, HS) slice (row stride ld in global memory) into shared
// memory (ROWS, D + 4), zero past T and past HS.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile(float* dst, const float* __restrict__ src, int64_t ld, int r0, int T,
                                          int HS, bool vec) {
  constexpr int lds = D + 4;
  if (vec) {  // HS % 4 == 0 and src, ld 16-byte aligned: a float4 is all inside HS or all outside
    for (int e = threadIdx.x; e < ROWS * (D / 4); e += kThreads) {
      const int r = e / (D / 4), d = (e % (D / 4)) * 4;
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r0 + r < T && d < HS) x = __ldg(reinterpret_cast<const float4*>(src + (int64_t)(r0 + r) * ld + d));
      *reinterpret_cast<float4*>(dst + r * lds + d) = x;
    }
  } else {
    for (int e = threadIdx.x; e < ROWS * D; e += kThreads) {
      const int r = e / D, d = e % D;
      dst[r * lds + d] = (r0 + r < T && d < HS) ? __ldg(src + (int64_t)(r0 + r) * ld + d) : 0.0f;
    }
  }
}

// acc[i][j] = A[ty RM + i, :] . B[tx + 16 j, :] over D columns; A and B in shared memory with
// row stride D + 4. A's rows are the same for a half-warp (a broadcast); B's are 16 rows.
template <int RM, int RN, int D>
__device__ __forceinline__ void tile_dots(float (&acc)[RM][RN], const float* A, const float* B, int ty, int tx) {
  constexpr int ld = D + 4;
#pragma unroll
  for (int i = 0; i < RM; i++)
#pragma unroll
    for (int j = 0; j < RN; j++) acc[i][j] = 0.0f;
#pragma unroll 2
  for (int d = 0; d < D; d += 4) {
    float4 a[RM], b[RN];
#pragma unroll
    for (int i = 0; i < RM; i++) a[i] = *reinterpret_cast<const float4*>(A + (ty * RM + i) * ld + d);
#pragma unroll
    for (int j = 0; j < RN; j++) b[j] = *reinterpret_cast<const float4*>(B + (tx + 16 * j) * ld + d);
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RN; j++) {
        float s = acc[i][j];
        s = fmaf(a[i].x, b[j].x, s);
        s = fmaf(a[i].y, b[j].y, s);
        s = fmaf(a[i].z, b[j].z, s);
        s = fmaf(a[i].w, b[j].w, s);
        acc[i][j] = s;
      }
  }
}

// acc[i][j] += sum_{k < N} P[ty RM + i, k] V[k, dcol(tx, j)]; P (rows, N) with stride N + 4,
// V (N, D) with stride D + 4, both in shared memory.
template <int RM, int N, int D>
__device__ __forceinline__ void tile_accumulate(float (&acc)[RM][D / 16], const float* P, const float* V, int ty,
                                                int tx) {
  constexpr int RD = D / 16, ldp = N + 4, ldv = D + 4;
#pragma unroll 2
  for (int k = 0; k < N; k += 4) {
    float p[RM][4];
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const float4 x = *reinterpret_cast<const float4*>(P + (ty * RM + i) * ldp + k);
      p[i][0] = x.x, p[i][1] = x.y, p[i][2] = x.z, p[i][3] = x.w;
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
      const float* v = V + (k + kk) * ldv;
      float vv[RD];
      if constexpr (D >= 64) {
#pragma unroll
        for (int g = 0; g < RD / 4; g++) {
          const float4 x = *reinterpret_cast<const float4*>(v + g * 64 + tx * 4);
          vv[4 * g] = x.x, vv[4 * g + 1] = x.y, vv[4 * g + 2] = x.z, vv[4 * g + 3] = x.w;
        }
      } else {
#pragma unroll
        for (int j = 0; j < RD; j++) vv[j] = v[j * 16 + tx];
      }
#pragma unroll
      for (int i = 0; i < RM; i++)
#pragma unroll
        for (int j = 0; j < RD; j++) acc[i][j] = fmaf(p[i][kk], vv[j], acc[i][j]);
    }
  }
}

// Over the 16 threads of a half-warp (one row group): xor-shuffles, the same tree in every row.
__device__ __forceinline__ float row_max(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float row_sum(float x) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// ---------------------------------------------------------------- forward

// Tiles: BM queries x BN keys. blockIdx.x = b NH + h; blockIdx.y counts query tiles from the
// last, so the longest blocks (most key tiles) start first.
template <int D, int BM, int BN>
__global__ void __launch_bounds__(kThreads, 2) attention_forward_kernel(float* __restrict__ out,
                                                                     __nv_bfloat16* __restrict__ out_bf16,
                                                                     float* __restrict__ lse,
                                                                     const float* __restrict__ qkv, int T, int C,
                                                                     int NH, int HS, float scale, bool vec) {
  constexpr int RM = BM / 16, RN = BN / 16, RD = D / 16, ld = D + 4, ldp = BN + 4;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Ks = Qs + BM * ld;
  float* Vs = Ks + BN * ld;
  float* Ps = Vs + BN * ld;

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  load_tile<BM, D>(Qs, q, ldg, q0, T, HS, vec);
  float m[RM], l[RM], o[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    m[i] = -INFINITY;
    l[i] = 0.0f;  // this thread's share of the row sum, rescaled with the row's max
#pragma unroll
    for (int j = 0; j < RD; j++) o[i][j] = 0.0f;
  }
  const int q_last = min(q0 + BM, T) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += BN) {
    __syncthreads();  // the previous tile's K, V and P are read by everyone
    load_tile<BN, D>(Ks, k, ldg, k0, T, HS, vec);
    load_tile<BN, D>(Vs, v, ldg, k0, T, HS, vec);
    __syncthreads();
    float s[RM][RN];
    tile_dots<RM, RN, D>(s, Qs, Ks, ty, tx);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = q0 + ty * RM + i;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        s[i][j] = k0 + tx + 16 * j <= r ? s[i][j] * scale : -INFINITY;
        mx = fmaxf(mx, s[i][j]);
      }
      // finite: key 0 is in the first tile and every row r >= 0 sees it
      const float m_new = fmaxf(m[i], row_max(mx));
      const float corr = expf(m[i] - m_new);  // 0 on the first tile (m = -inf)
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const float p = expf(s[i][j] - m_new);  // masked: exp(-inf) = 0
        Ps[(ty * RM + i) * ldp + tx + 16 * j] = p;
        sum += p;
      }
      l[i] = l[i] * corr + sum;
#pragma unroll
      for (int j = 0; j < RD; j++) o[i][j] *= corr;
    }
    __syncthreads();
    tile_accumulate<RM, BN, D>(o, Ps, Vs, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    const float L = row_sum(l[i]);  // every thread of the half-warp takes part
    if (r >= T) continue;
    const float inv = 1.0f / L;
    const int64_t row = ((int64_t)b * T + r) * C + (int64_t)h * HS;
#pragma unroll
    for (int j = 0; j < RD; j++) {
      const int c = dcol<D>(tx, j);
      if (c < HS) {
        const float y = o[i][j] * inv;
        out[row + c] = y;
        if (out_bf16) out_bf16[row + c] = __float2bfloat16_rn(y);
      }
    }
    if (lse && tx == 0) lse[(int64_t)bh * T + r] = m[i] + logf(L);
  }
}

// ---------------------------------------------------------------- backward

// Dv[(b NH + h) T + t] = sum_d dout[b, t, h HS + d] out[b, t, h HS + d]: one warp per (b, t, h).
__global__ void attention_delta_kernel(float* __restrict__ Dv, const float* __restrict__ dout,
                                       const float* __restrict__ out, int64_t rows, int T, int NH, int HS) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x / 32);
  for (int64_t w = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; w < rows; w += warps) {
    // w = (b T + t) NH + h, and C = NH HS, so the head's values start at w HS
    const float* dy = dout + w * HS;
    const float* y = out + w * HS;
    float s = 0.0f;
    for (int d = lane; d < HS; d += 32) s = fmaf(dy[d], y[d], s);
    s = warp_sum(s);
    if (lane == 0) {
      const int64_t bt = w / NH, h = w % NH, b = bt / T, t = bt % T;
      Dv[(b * NH + h) * T + t] = s;
    }
  }
}

// dQ: tiles of BM queries x BN keys; blockIdx as the forward's.
template <int D, int BM, int BN>
__global__ void __launch_bounds__(kThreads, 2) attention_dq_kernel(float* __restrict__ dqkv,
                                                                const float* __restrict__ dout,
                                                                const float* __restrict__ qkv,
                                                                const float* __restrict__ lse,
                                                                const float* __restrict__ Dv, int T, int C, int NH,
                                                                int HS, float scale, bool vec) {
  constexpr int RM = BM / 16, RN = BN / 16, RD = D / 16, ld = D + 4, ldp = BN + 4;
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* dOs = Qs + BM * ld;
  float* Ks = dOs + BM * ld;
  float* Vs = Ks + BN * ld;
  float* dSs = Vs + BN * ld;

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  load_tile<BM, D>(Qs, q, ldg, q0, T, HS, vec);
  load_tile<BM, D>(dOs, dout + (int64_t)b * T * C + (int64_t)h * HS, C, q0, T, HS, vec);
  float row_lse[RM], row_D[RM], acc[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    row_lse[i] = r < T ? lse[(int64_t)bh * T + r] : 0.0f;
    row_D[i] = r < T ? Dv[(int64_t)bh * T + r] : 0.0f;
#pragma unroll
    for (int j = 0; j < RD; j++) acc[i][j] = 0.0f;
  }
  const int q_last = min(q0 + BM, T) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += BN) {
    __syncthreads();  // the previous tile's K and dS are read by everyone
    load_tile<BN, D>(Ks, k, ldg, k0, T, HS, vec);
    load_tile<BN, D>(Vs, v, ldg, k0, T, HS, vec);
    __syncthreads();
    float s[RM][RN], dp[RM][RN];
    tile_dots<RM, RN, D>(s, Qs, Ks, ty, tx);
    tile_dots<RM, RN, D>(dp, dOs, Vs, ty, tx);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = q0 + ty * RM + i;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const int c = k0 + tx + 16 * j;
        const float p = (c <= r && r < T) ? expf(s[i][j] * scale - row_lse[i]) : 0.0f;
        dSs[(ty * RM + i) * ldp + tx + 16 * j] = p * (dp[i][j] - row_D[i]);
      }
    }
    __syncthreads();
    tile_accumulate<RM, BN, D>(acc, dSs, Ks, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    if (r >= T) continue;
    float* dq = dqkv + ((int64_t)b * T + r) * ldg + (int64_t)h * HS;
#pragma unroll
    for (int j = 0; j < RD; j++) {
      const int c = dcol<D>(tx, j);
      if (c < HS) dq[c] = scale * acc[i][j];
    }
  }
}

// dK, dV: tiles of BM keys x BN queries. blockIdx.x = b NH + h; blockIdx.y = the key tile, the
// first ones the longest (most query tiles past the diagonal).
template <int D, int BM, int BN>
__global__ void __launch_bounds__(kThreads, 2) attention_dkv_kernel(float* __restrict__ dqkv,
                                                                 const float* __restrict__ dout,
                                                                 const float* __restrict__ qkv,
                                                                 const float* __restrict__ lse,
                                                                 const float* __restrict__ Dv, int T, int C, int NH,
                                                                 int HS, float scale, bool vec) {
  constexpr int RM = BM / 16, RN = BN / 16, RD = D / 16, ld = D + 4, ldp = BN + 4;
  extern __shared__ float4 smem4[];
  float* Ks = reinterpret_cast<float*>(smem4);
  float* Vs = Ks + BM * ld;
  float* Qs = Vs + BM * ld;
  float* dOs = Qs + BN * ld;
  float* Pts = dOs + BN * ld;  // P^T: (keys, queries)
  float* dSts = Pts + BM * ldp;
  float* col_lse = dSts + BM * ldp;
  float* col_D = col_lse + BN;

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int k0 = (int)blockIdx.y * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* dy = dout + (int64_t)b * T * C + (int64_t)h * HS;

  load_tile<BM, D>(Ks, q + C, ldg, k0, T, HS, vec);
  load_tile<BM, D>(Vs, q + 2 * C, ldg, k0, T, HS, vec);
  float dk[RM][RD], dv[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++)
#pragma unroll
    for (int j = 0; j < RD; j++) dk[i][j] = dv[i][j] = 0.0f;
  // queries before k0 see none of these keys
  for (int q0 = k0; q0 < T; q0 += BN) {
    __syncthreads();  // the previous tile's Q, dO, P^T and dS^T are read by everyone
    load_tile<BN, D>(Qs, q, ldg, q0, T, HS, vec);
    load_tile<BN, D>(dOs, dy, C, q0, T, HS, vec);
    if (threadIdx.x < BN) {
      const int c = q0 + threadIdx.x;
      col_lse[threadIdx.x] = c < T ? lse[(int64_t)bh * T + c] : 0.0f;
      col_D[threadIdx.x] = c < T ? Dv[(int64_t)bh * T + c] : 0.0f;
    }
    __syncthreads();
    float s[RM][RN], dp[RM][RN];
    tile_dots<RM, RN, D>(s, Ks, Qs, ty, tx);
    tile_dots<RM, RN, D>(dp, Vs, dOs, ty, tx);
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = k0 + ty * RM + i;  // key
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const int jc = tx + 16 * j, c = q0 + jc;  // query
        const float p = (r <= c && c < T) ? expf(s[i][j] * scale - col_lse[jc]) : 0.0f;
        Pts[(ty * RM + i) * ldp + jc] = p;
        dSts[(ty * RM + i) * ldp + jc] = p * (dp[i][j] - col_D[jc]);
      }
    }
    __syncthreads();
    tile_accumulate<RM, BN, D>(dv, Pts, dOs, ty, tx);
    tile_accumulate<RM, BN, D>(dk, dSts, Qs, ty, tx);
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = k0 + ty * RM + i;
    if (r >= T) continue;
    float* dkr = dqkv + ((int64_t)b * T + r) * ldg + C + (int64_t)h * HS;
    float* dvr = dkr + C;
#pragma unroll
    for (int j = 0; j < RD; j++) {
      const int c = dcol<D>(tx, j);
      if (c < HS) {
        dkr[c] = scale * dk[i][j];
        dvr[c] = dv[i][j];
      }
    }
  }
}

// ---------------------------------------------------------------- bf16 tensor cores

// The bf16 path: every kernel is a block of 8 warps over 64 x 64 tiles (queries x keys, or keys
// x queries), D in {64, 128}. The products run as WMMA 16x16x16 bf16 fragments with fp32
// accumulators, warp w owning row strip w / 2 (16 rows) and the half w % 2 of the columns: 2
// fragments of a 64-column score tile, D / 32 fragments of a D-column output tile. Everything
// between the products (mask, scale, exp, online softmax, dS = P (dP - D)) is done by the
// fp32 path's (ty, tx) thread grid on fp32 tiles that the warps store to shared memory, so a
// WMMA accumulator's opaque element layout never matters. bf16 tiles have a row stride of
// D + 8 (or BN + 8) elements: 16-byte row steps that keep ldmatrix free of bank conflicts and
// every fragment pointer 32-byte aligned.
namespace wmma = nvcuda::wmma;
using bf16 = __nv_bfloat16;
using AFrag = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using CFrag = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

constexpr int kTile = 64;  // BM = BN for every bf16 kernel (8 warps = 4 row strips x 2 halves)

// Rows [r0, r0 + ROWS) of a head's (T, HS) fp32 slice (row stride ld in global memory) into
// shared memory as bf16 (ROWS, D + 8), rounded to nearest even, zero past T and past HS.
template <int ROWS, int D>
__device__ __forceinline__ void load_tile_bf16(bf16* dst, const float* __restrict__ src, int64_t ld, int r0, int T,
                                               int HS, bool vec) {
  constexpr int lds = D + 8;
  if (vec) {  // HS % 4 == 0 and src, ld 16-byte aligned: a float4 is all inside HS or all outside
#pragma unroll 2
    for (int e = threadIdx.x; e < ROWS * (D / 4); e += kThreads) {
      const int r = e / (D / 4), d = (e % (D / 4)) * 4;
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r0 + r < T && d < HS) x = __ldg(reinterpret_cast<const float4*>(src + (int64_t)(r0 + r) * ld + d));
      __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(dst + r * lds + d);  // 8-byte aligned
      p[0] = __floats2bfloat162_rn(x.x, x.y);
      p[1] = __floats2bfloat162_rn(x.z, x.w);
    }
  } else {
    for (int e = threadIdx.x; e < ROWS * D; e += kThreads) {
      const int r = e / D, d = e % D;
      dst[r * lds + d] = __float2bfloat16_rn((r0 + r < T && d < HS) ? __ldg(src + (int64_t)(r0 + r) * ld + d) : 0.0f);
    }
  }
}

// One warp: acc[c] += A[0:16, 0:K] B[0:K, n0 + 16 c : n0 + 16 c + 16] for c < NC, summed over K
// in steps of 16 in order. A is row-major in shared memory (stride lda, already at its first
// row). B comes from X in shared memory (stride ldx): BT = false, B = X with X (K, N)
// row-major; BT = true, B = X^T with X (N, K) row-major (a column-major B).
template <int NC, int K, bool BT>
__device__ __forceinline__ void warp_mma(CFrag (&acc)[NC], const bf16* A, int lda, const bf16* X, int ldx, int n0) {
#pragma unroll 2
  for (int k = 0; k < K; k += 16) {
    AFrag a;
    wmma::load_matrix_sync(a, A + k, lda);
#pragma unroll
    for (int c = 0; c < NC; c++) {
      const int n = n0 + 16 * c;
      if constexpr (BT) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
        wmma::load_matrix_sync(b, X + n * ldx + k, ldx);
        wmma::mma_sync(acc[c], a, b, acc[c]);
      } else {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(b, X + k * ldx + n, ldx);
        wmma::mma_sync(acc[c], a, b, acc[c]);
      }
    }
  }
}

template <int NC>
__device__ __forceinline__ void zero(CFrag (&acc)[NC]) {
#pragma unroll
  for (int c = 0; c < NC; c++) wmma::fill_fragment(acc[c], 0.0f);
}

// The warp's fragments acc[c] into fp32 shared memory at (row0, col0 + 16 c), stride ld.
template <int NC>
__device__ __forceinline__ void store_frags(float* dst, int ld, const CFrag (&acc)[NC], int row0, int col0) {
#pragma unroll
  for (int c = 0; c < NC; c++) wmma::store_matrix_sync(dst + row0 * ld + col0 + 16 * c, acc[c], ld, wmma::mem_row_major);
}

// This thread's accumulator columns dcol<D>(tx, j) of row `row` of an fp32 (*, D + 4) tile.
template <int D>
__device__ __forceinline__ void read_row(float (&x)[D / 16], const float* tile, int row, int tx) {
  static_assert(D >= 64, "runs of 4 columns");
  const float* p = tile + row * (D + 4) + tx * 4;
#pragma unroll
  for (int g = 0; g < D / 64; g++) {
    const float4 v = *reinterpret_cast<const float4*>(p + g * 64);
    x[4 * g] = v.x, x[4 * g + 1] = v.y, x[4 * g + 2] = v.z, x[4 * g + 3] = v.w;
  }
}

// Shared memory of the bf16 kernels, in bytes (all region sizes are multiples of 128 bytes).
template <int D>
struct Bf16Smem {
  static constexpr int ldk = D + 8;       // bf16 tiles of Q, K, V, dO
  static constexpr int lds = kTile + 4;   // fp32 score tiles
  static constexpr int ldo = D + 4;       // fp32 output staging
  static constexpr size_t tile_bf16 = sizeof(bf16) * kTile * ldk;
  static constexpr size_t scores = sizeof(float) * kTile * lds;
  static constexpr size_t staging = sizeof(float) * kTile * ldo;
  // Q, K, V; P (bf16, stride kTile + 8); S, which the P V staging overlays
  static constexpr size_t forward = 3 * tile_bf16 + sizeof(bf16) * kTile * (kTile + 8) + (staging > scores ? staging : scores);
  // Q, dO, K, V; S and dP (fp32), which dS (bf16) and at the end the dQ staging overlay
  static constexpr size_t dq = 4 * tile_bf16 + 2 * scores;
  // K, V, Q, dO; S^T and dP^T (fp32), which P^T, dS^T (bf16) and the dK, dV staging overlay; lse, D
  static constexpr size_t dkv = 4 * tile_bf16 + 2 * scores + 2 * sizeof(float) * kTile;
  static_assert(staging <= 2 * scores, "the dQ / dK / dV staging fits over S and dP");
  static_assert(forward <= 113 * 1024 && dq <= 113 * 1024 && dkv <= 113 * 1024, "two blocks per SM on sm_90");
};

// Forward: blockIdx as attention_forward_kernel's. Per key tile: S = Q K^T (warps) -> fp32 S in
// shared memory -> online softmax (threads; P rounded to bf16, the row sums from fp32 p) ->
// P V (warps) -> fp32 staging -> o = o corr + P V in the threads' registers.
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_forward_bf16_kernel(float* __restrict__ out,
                                                                          bf16* __restrict__ out_bf16,
                                                                          float* __restrict__ lse,
                                                                          const float* __restrict__ qkv, int T,
                                                                          int C, int NH, int HS, float scale,
                                                                          bool vec) {
  using M = Bf16Smem<D>;
  constexpr int BM = kTile, BN = kTile, RM = BM / 16, RN = BN / 16, RD = D / 16;
  constexpr int ldk = M::ldk, ldp = BN + 8, lds = M::lds, ldo = M::ldo, NO = D / 32;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + BM * ldk;
  bf16* Vs = Ks + BN * ldk;
  bf16* Ps = Vs + BN * ldk;
  float* Ss = reinterpret_cast<float*>(Ps + BM * ldp);  // S (BM, lds), then the P V staging (BM, ldo)

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int warp = threadIdx.x / 32, wrow = (warp / 2) * 16, whalf = warp % 2;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  load_tile_bf16<BM, D>(Qs, q, ldg, q0, T, HS, vec);
  float m[RM], l[RM], o[RM][RD];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    m[i] = -INFINITY;
    l[i] = 0.0f;  // this thread's share of the row sum, rescaled with the row's max
#pragma unroll
    for (int j = 0; j < RD; j++) o[i][j] = 0.0f;
  }
  const int q_last = min(q0 + BM, T) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += BN) {
    __syncthreads();  // the previous tile's K, V and staging are read by everyone
    load_tile_bf16<BN, D>(Ks, k, ldg, k0, T, HS, vec);
    load_tile_bf16<BN, D>(Vs, v, ldg, k0, T, HS, vec);
    __syncthreads();
    {
      CFrag acc[2];
      zero(acc);
      warp_mma<2, D, true>(acc, Qs + wrow * ldk, ldk, Ks, ldk, whalf * 32);
      store_frags(Ss, lds, acc, wrow, whalf * 32);
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int rl = ty * RM + i, r = q0 + rl;
      float s[RN], mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        s[j] = k0 + tx + 16 * j <= r ? Ss[rl * lds + tx + 16 * j] * scale : -INFINITY;
        mx = fmaxf(mx, s[j]);
      }
      // finite: key 0 is in the first tile and every row r >= 0 sees it
      const float m_new = fmaxf(m[i], row_max(mx));
      const float corr = expf(m[i] - m_new);  // 0 on the first tile (m = -inf)
      m[i] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const float p = expf(s[j] - m_new);  // masked: exp(-inf) = 0
        Ps[rl * ldp + tx + 16 * j] = __float2bfloat16_rn(p);
        sum += p;
      }
      l[i] = l[i] * corr + sum;
#pragma unroll
      for (int j = 0; j < RD; j++) o[i][j] *= corr;
    }
    __syncthreads();  // P complete; S read by everyone (the staging overwrites it)
    {
      CFrag acc[NO];
      zero(acc);
      warp_mma<NO, BN, false>(acc, Ps + wrow * ldp, ldp, Vs, ldk, whalf * (D / 2));
      store_frags(Ss, ldo, acc, wrow, whalf * (D / 2));
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < RM; i++) {
      float pv[RD];
      read_row<D>(pv, Ss, ty * RM + i, tx);
#pragma unroll
      for (int j = 0; j < RD; j++) o[i][j] += pv[j];
    }
  }

#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    const float L = row_sum(l[i]);  // every thread of the half-warp takes part
    if (r >= T) continue;
    const float inv = 1.0f / L;
    const int64_t row = ((int64_t)b * T + r) * C + (int64_t)h * HS;
#pragma unroll
    for (int j = 0; j < RD; j++) {
      const int c = dcol<D>(tx, j);
      if (c < HS) {
        const float y = o[i][j] * inv;
        out[row + c] = y;
        if (out_bf16) out_bf16[row + c] = __float2bfloat16_rn(y);
      }
    }
    if (lse && tx == 0) lse[(int64_t)bh * T + r] = m[i] + logf(L);
  }
}

// dQ: blockIdx as attention_dq_kernel's. Per key tile: S = Q K^T and dP = dO V^T (warps) ->
// fp32 in shared memory -> dS = P (dP - D) (threads, rounded to bf16 over S's space) -> dQ +=
// dS K in the warps' accumulators, which persist over the key tiles.
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_dq_bf16_kernel(float* __restrict__ dqkv,
                                                                     const float* __restrict__ dout,
                                                                     const float* __restrict__ qkv,
                                                                     const float* __restrict__ lse,
                                                                     const float* __restrict__ Dv, int T, int C,
                                                                     int NH, int HS, float scale, bool vec) {
  using M = Bf16Smem<D>;
  constexpr int BM = kTile, BN = kTile, RM = BM / 16, RN = BN / 16, RD = D / 16;
  constexpr int ldk = M::ldk, lds = M::lds, ldb = 2 * lds, ldo = M::ldo, NO = D / 32;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* dOs = Qs + BM * ldk;
  bf16* Ks = dOs + BM * ldk;
  bf16* Vs = Ks + BN * ldk;
  float* Ss = reinterpret_cast<float*>(Vs + BN * ldk);
  float* dPs = Ss + BM * lds;
  bf16* dSs = reinterpret_cast<bf16*>(Ss);  // (BM, ldb): row r in the first half of S's row r

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int warp = threadIdx.x / 32, wrow = (warp / 2) * 16, whalf = warp % 2;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  load_tile_bf16<BM, D>(Qs, q, ldg, q0, T, HS, vec);
  load_tile_bf16<BM, D>(dOs, dout + (int64_t)b * T * C + (int64_t)h * HS, C, q0, T, HS, vec);
  float row_lse[RM], row_D[RM];
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    row_lse[i] = r < T ? lse[(int64_t)bh * T + r] : 0.0f;
    row_D[i] = r < T ? Dv[(int64_t)bh * T + r] : 0.0f;
  }
  CFrag dq[NO];
  zero(dq);
  const int q_last = min(q0 + BM, T) - 1;
  for (int k0 = 0; k0 <= q_last; k0 += BN) {
    __syncthreads();  // the previous tile's K and dS are read by everyone
    load_tile_bf16<BN, D>(Ks, k, ldg, k0, T, HS, vec);
    load_tile_bf16<BN, D>(Vs, v, ldg, k0, T, HS, vec);
    __syncthreads();
    {
      CFrag s[2], dp[2];
      zero(s);
      zero(dp);
      warp_mma<2, D, true>(s, Qs + wrow * ldk, ldk, Ks, ldk, whalf * 32);
      warp_mma<2, D, true>(dp, dOs + wrow * ldk, ldk, Vs, ldk, whalf * 32);
      store_frags(Ss, lds, s, wrow, whalf * 32);
      store_frags(dPs, lds, dp, wrow, whalf * 32);
    }
    __syncthreads();
    __nv_bfloat162 ds[RM][RN / 2];  // dS rounded to bf16, columns tx + 16 j in pairs (j even, j + 1)
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = q0 + ty * RM + i;
      float x[RN];
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const int c = k0 + tx + 16 * j;
        const float s = Ss[(ty * RM + i) * lds + tx + 16 * j], dp = dPs[(ty * RM + i) * lds + tx + 16 * j];
        const float p = (c <= r && r < T) ? expf(s * scale - row_lse[i]) : 0.0f;
        x[j] = p * (dp - row_D[i]);
      }
#pragma unroll
      for (int j = 0; j < RN; j += 2) ds[i][j / 2] = __floats2bfloat162_rn(x[j], x[j + 1]);
    }
    __syncthreads();  // dS overwrites S
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RN; j += 2) {
        dSs[(ty * RM + i) * ldb + tx + 16 * j] = __low2bfloat16(ds[i][j / 2]);
        dSs[(ty * RM + i) * ldb + tx + 16 * (j + 1)] = __high2bfloat16(ds[i][j / 2]);
      }
    __syncthreads();
    warp_mma<NO, BN, false>(dq, dSs + wrow * ldb, ldb, Ks, ldk, whalf * (D / 2));
  }

  __syncthreads();  // the last dS is read by everyone (the staging overwrites it)
  store_frags(Ss, ldo, dq, wrow, whalf * (D / 2));
  __syncthreads();
#pragma unroll
  for (int i = 0; i < RM; i++) {
    const int r = q0 + ty * RM + i;
    if (r >= T) continue;
    float x[RD];
    read_row<D>(x, Ss, ty * RM + i, tx);
    float* dqr = dqkv + ((int64_t)b * T + r) * ldg + (int64_t)h * HS;
#pragma unroll
    for (int j = 0; j < RD; j++) {
      const int c = dcol<D>(tx, j);
      if (c < HS) dqr[c] = scale * x[j];
    }
  }
}

// dK, dV: blockIdx as attention_dkv_kernel's (64 keys x 64 queries). Per query tile: S^T = K Q^T
// and dP^T = V dO^T (warps) -> fp32 in shared memory -> P^T and dS^T (threads, rounded to bf16
// over S^T's and dP^T's space) -> dV += P^T dO and dK += dS^T Q in the warps' accumulators.
template <int D>
__global__ void __launch_bounds__(kThreads, 2) attention_dkv_bf16_kernel(float* __restrict__ dqkv,
                                                                      const float* __restrict__ dout,
                                                                      const float* __restrict__ qkv,
                                                                      const float* __restrict__ lse,
                                                                      const float* __restrict__ Dv, int T, int C,
                                                                      int NH, int HS, float scale, bool vec) {
  using M = Bf16Smem<D>;
  constexpr int BM = kTile, BN = kTile, RM = BM / 16, RN = BN / 16, RD = D / 16;
  constexpr int ldk = M::ldk, lds = M::lds, ldb = 2 * lds, ldo = M::ldo, NO = D / 32;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + BM * ldk;
  bf16* Qs = Vs + BM * ldk;
  bf16* dOs = Qs + BN * ldk;
  float* Sts = reinterpret_cast<float*>(dOs + BN * ldk);  // S^T: (keys, queries)
  float* dPts = Sts + BM * lds;
  float* col_lse = dPts + BM * lds;
  float* col_D = col_lse + BN;
  bf16* Pts = reinterpret_cast<bf16*>(Sts);    // (BM, ldb) over S^T
  bf16* dSts = reinterpret_cast<bf16*>(dPts);  // (BM, ldb) over dP^T

  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int warp = threadIdx.x / 32, wrow = (warp / 2) * 16, whalf = warp % 2;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int k0 = (int)blockIdx.y * BM;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* dy = dout + (int64_t)b * T * C + (int64_t)h * HS;

  load_tile_bf16<BM, D>(Ks, q + C, ldg, k0, T, HS, vec);
  load_tile_bf16<BM, D>(Vs, q + 2 * C, ldg, k0, T, HS, vec);
  CFrag dk[NO], dv[NO];
  zero(dk);
  zero(dv);
  // queries before k0 see none of these keys
  for (int q0 = k0; q0 < T; q0 += BN) {
    __syncthreads();  // the previous tile's Q, dO, P^T, dS^T, lse and D are read by everyone
    load_tile_bf16<BN, D>(Qs, q, ldg, q0, T, HS, vec);
    load_tile_bf16<BN, D>(dOs, dy, C, q0, T, HS, vec);
    if (threadIdx.x < BN) {
      const int c = q0 + threadIdx.x;
      col_lse[threadIdx.x] = c < T ? lse[(int64_t)bh * T + c] : 0.0f;
      col_D[threadIdx.x] = c < T ? Dv[(int64_t)bh * T + c] : 0.0f;
    }
    __syncthreads();
    {
      CFrag st[2], dpt[2];
      zero(st);
      zero(dpt);
      warp_mma<2, D, true>(st, Ks + wrow * ldk, ldk, Qs, ldk, whalf * 32);
      warp_mma<2, D, true>(dpt, Vs + wrow * ldk, ldk, dOs, ldk, whalf * 32);
      store_frags(Sts, lds, st, wrow, whalf * 32);
      store_frags(dPts, lds, dpt, wrow, whalf * 32);
    }
    __syncthreads();
    // P^T and dS^T rounded to bf16, columns tx + 16 j in pairs (j even, j + 1)
    __nv_bfloat162 pt[RM][RN / 2], dst[RM][RN / 2];
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = k0 + ty * RM + i;  // key
      float x[RN], y[RN];
#pragma unroll
      for (int j = 0; j < RN; j++) {
        const int jc = tx + 16 * j, c = q0 + jc;  // query
        const float s = Sts[(ty * RM + i) * lds + jc], dp = dPts[(ty * RM + i) * lds + jc];
        const float p = (r <= c && c < T) ? expf(s * scale - col_lse[jc]) : 0.0f;
        x[j] = p;
        y[j] = p * (dp - col_D[jc]);
      }
#pragma unroll
      for (int j = 0; j < RN; j += 2) {
        pt[i][j / 2] = __floats2bfloat162_rn(x[j], x[j + 1]);
        dst[i][j / 2] = __floats2bfloat162_rn(y[j], y[j + 1]);
      }
    }
    __syncthreads();  // P^T and dS^T overwrite S^T and dP^T
#pragma unroll
    for (int i = 0; i < RM; i++)
#pragma unroll
      for (int j = 0; j < RN; j += 2) {
        const int row = (ty * RM + i) * ldb, jc = tx + 16 * j;
        Pts[row + jc] = __low2bfloat16(pt[i][j / 2]);
        Pts[row + jc + 16] = __high2bfloat16(pt[i][j / 2]);
        dSts[row + jc] = __low2bfloat16(dst[i][j / 2]);
        dSts[row + jc + 16] = __high2bfloat16(dst[i][j / 2]);
      }
    __syncthreads();
    warp_mma<NO, BN, false>(dv, Pts + wrow * ldb, ldb, dOs, ldk, whalf * (D / 2));
    warp_mma<NO, BN, false>(dk, dSts + wrow * ldb, ldb, Qs, ldk, whalf * (D / 2));
  }

  // dK then dV through the staging over S^T and dP^T
  float* stage = Sts;
#pragma unroll
  for (int part = 0; part < 2; part++) {
    __syncthreads();  // P^T, dS^T (the last tile) or the staged dK are read by everyone
    if (part == 0) {
      store_frags(stage, ldo, dk, wrow, whalf * (D / 2));
    } else {
      store_frags(stage, ldo, dv, wrow, whalf * (D / 2));
    }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < RM; i++) {
      const int r = k0 + ty * RM + i;
      if (r >= T) continue;
      float x[RD];
      read_row<D>(x, stage, ty * RM + i, tx);
      float* dst = dqkv + ((int64_t)b * T + r) * ldg + (1 + part) * (int64_t)C + (int64_t)h * HS;
      const float f = part == 0 ? scale : 1.0f;
#pragma unroll
      for (int j = 0; j < RD; j++) {
        const int c = dcol<D>(tx, j);
        if (c < HS) dst[c] = f * x[j];
      }
    }
  }
}

// ---------------------------------------------------------------- host side

// Tile shapes per padded head size: 64 x 64 up to D = 64; smaller tiles at 128 keep the shared
// memory at <= 111 KB (two blocks per SM on sm_90) and the accumulators in registers.
template <int D>
struct Tiles {
  static constexpr int fwd_m = 64, fwd_n = D == 128 ? 32 : 64;  // queries x keys
  static constexpr int dq_m = 64, dq_n = D == 128 ? 32 : 64;    // queries x keys
  static constexpr int dkv_m = D == 128 ? 32 : 64, dkv_n = D == 128 ? 32 : 64;  // keys x queries
};

constexpr size_t tile_floats(int rows, int cols) { return (size_t)rows * (size_t)(cols + 4); }

// Opts the kernel in to `bytes` of dynamic shared memory (above 48 KB needs it), once per kernel.
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  SIEVE_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

struct Shape {
  int B, T, C, NH, HS;
};

Shape checked_shape(int64_t B, int64_t T, int64_t C, int64_t NH) {
  SIEVE_CHECK(B >= 1 && T >= 1 && NH >= 1 && C >= 1, "attention: B=%lld T=%lld C=%lld NH=%lld must be >= 1",
              (long long)B, (long long)T, (long long)C, (long long)NH);
  SIEVE_CHECK(C % NH == 0, "attention: C=%lld is not a multiple of NH=%lld", (long long)C, (long long)NH);
  SIEVE_CHECK(C / NH <= 128, "attention: head size %lld over 128", (long long)(C / NH));
  // grid.y counts tiles of 32 or more rows (at most 65535); offsets inside a head stay in int
  SIEVE_CHECK(T <= (1 << 21) && 3 * C <= (1 << 30) && B * NH <= INT32_MAX, "attention: B=%lld T=%lld C=%lld NH=%lld too large",
              (long long)B, (long long)T, (long long)C, (long long)NH);
  return {(int)B, (int)T, (int)C, (int)NH, (int)(C / NH)};
}

int padded_head(int HS) { return HS <= 16 ? 16 : HS <= 32 ? 32 : HS <= 64 ? 64 : 128; }

unsigned tiles(int T, int rows) { return (unsigned)((T + rows - 1) / rows); }

template <int D>
void forward_d(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, const Shape& s, bool vec,
               cudaStream_t stream) {
  constexpr int BM = Tiles<D>::fwd_m, BN = Tiles<D>::fwd_n;
  constexpr size_t bytes = sizeof(float) * (tile_floats(BM, D) + 2 * tile_floats(BN, D) + tile_floats(BM, BN));
  static const bool opted = (allow_smem(attention_forward_kernel<D, BM, BN>, bytes), true);
  (void)opted;
  const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, BM));
  attention_forward_kernel<D, BM, BN><<<grid, kThreads, bytes, stream>>>(
      out, out_bf16, lse, qkv, s.T, s.C, s.NH, s.HS, 1.0f / std::sqrt((float)s.HS), vec);
  SIEVE_LAUNCHED();
}

template <int D>
void backward_d(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Dv, const Shape& s,
                bool vec, cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt((float)s.HS);
  {
    constexpr int BM = Tiles<D>::dkv_m, BN = Tiles<D>::dkv_n;
    constexpr size_t bytes =
        sizeof(float) * (2 * tile_floats(BM, D) + 2 * tile_floats(BN, D) + 2 * tile_floats(BM, BN) + 2 * BN);
    static const bool opted = (allow_smem(attention_dkv_kernel<D, BM, BN>, bytes), true);
    (void)opted;
    const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, BM));
    attention_dkv_kernel<D, BM, BN><<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH,
                                                                        s.HS, scale, vec);
    SIEVE_LAUNCHED();
  }
  {
    constexpr int BM = Tiles<D>::dq_m, BN = Tiles<D>::dq_n;
    constexpr size_t bytes = sizeof(float) * (2 * tile_floats(BM, D) + 2 * tile_floats(BN, D) + tile_floats(BM, BN));
    static const bool opted = (allow_smem(attention_dq_kernel<D, BM, BN>, bytes), true);
    (void)opted;
    const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, BM));
    attention_dq_kernel<D, BM, BN><<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH, s.HS,
                                                                       scale, vec);
    SIEVE_LAUNCHED();
  }
}

template <int D>
void forward_bf16_d(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, const Shape& s, bool vec,
                    cudaStream_t stream) {
  constexpr size_t bytes = Bf16Smem<D>::forward;
  static const bool opted = (allow_smem(attention_forward_bf16_kernel<D>, bytes), true);
  (void)opted;
  const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, kTile));
  attention_forward_bf16_kernel<D><<<grid, kThreads, bytes, stream>>>(out, out_bf16, lse, qkv, s.T, s.C, s.NH, s.HS,
                                                                      1.0f / std::sqrt((float)s.HS), vec);
  SIEVE_LAUNCHED();
}

template <int D>
void backward_bf16_d(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Dv,
                     const Shape& s, bool vec, cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt((float)s.HS);
  const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, kTile));
  {
    constexpr size_t bytes = Bf16Smem<D>::dkv;
    static const bool opted = (allow_smem(attention_dkv_bf16_kernel<D>, bytes), true);
    (void)opted;
    attention_dkv_bf16_kernel<D><<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH, s.HS,
                                                                    scale, vec);
    SIEVE_LAUNCHED();
  }
  {
    constexpr size_t bytes = Bf16Smem<D>::dq;
    static const bool opted = (allow_smem(attention_dq_bf16_kernel<D>, bytes), true);
    (void)opted;
    attention_dq_bf16_kernel<D><<<grid, kThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH, s.HS,
                                                                   scale, vec);
    SIEVE_LAUNCHED();
  }
}

// The padded head size of the bf16 path (64 or 128), refusing smaller heads.
int bf16_head(const Shape& s) {
  const int D = padded_head(s.HS);
  SIEVE_CHECK(D >= 64, "attention: the bf16 path takes head sizes 33..128, not %d", s.HS);
  return D;
}

// attention_math(C / NH) where the shape has a head size; else fp32 (checked_shape refuses it).
AttentionMath default_math(int64_t C, int64_t NH) {
  return NH >= 1 && C >= 1 && C % NH == 0 ? attention_math(C / NH) : AttentionMath::fp32;
}

}  // namespace

AttentionMath attention_math(int64_t HS) { return HS == 64 || HS == 128 ? AttentionMath::bf16 : AttentionMath::fp32; }

void attention_forward(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream) {
  attention_forward(out, out_bf16, lse, qkv, B, T, C, NH, stream, default_math(C, NH));
}

void attention_forward(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream, AttentionMath math) {
  const Shape s = checked_shape(B, T, C, NH);
  const bool vec = s.HS % 4 == 0 && aligned(qkv, 16);
  if (math == AttentionMath::bf16) {
    if (bf16_head(s) == 64) {
      forward_bf16_d<64>(out, out_bf16, lse, qkv, s, vec, stream);
    } else {
      forward_bf16_d<128>(out, out_bf16, lse, qkv, s, vec, stream);
    }
    return;
  }
  switch (padded_head(s.HS)) {
    case 16: forward_d<16>(out, out_bf16, lse, qkv, s, vec, stream); break;
    case 32: forward_d<32>(out, out_bf16, lse, qkv, s, vec, stream); break;
    case 64: forward_d<64>(out, out_bf16, lse, qkv, s, vec, stream); break;
    default: forward_d<128>(out, out_bf16, lse, qkv, s, vec, stream); break;
  }
}

size_t attention_backward_scratch_floats(int64_t B, int64_t T, int64_t C, int64_t NH) {
  (void)C;
  return (size_t)(B * NH * T);
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream) {
  attention_backward(dqkv, dout, qkv, out, lse, scratch, B, T, C, NH, stream, default_math(C, NH));
}

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream,
                        AttentionMath math) {
  const Shape s = checked_shape(B, T, C, NH);
  const int D_bf16 = math == AttentionMath::bf16 ? bf16_head(s) : 0;  // refused before any launch
  float* Dv = scratch;
  const int64_t rows = (int64_t)s.B * s.T * s.NH;
  attention_delta_kernel<<<grid_for(rows, kThreads / 32), kThreads, 0, stream>>>(Dv, dout, out, rows, s.T, s.NH,
                                                                                  s.HS);
  SIEVE_LAUNCHED();
  const bool vec = s.HS % 4 == 0 && aligned(qkv, 16) && aligned(dout, 16);
  if (D_bf16 == 64) {
    backward_bf16_d<64>(dqkv, dout, qkv, lse, Dv, s, vec, stream);
    return;
  }
  if (D_bf16 == 128) {
    backward_bf16_d<128>(dqkv, dout, qkv, lse, Dv, s, vec, stream);
    return;
  }
  switch (padded_head(s.HS)) {
    case 16: backward_d<16>(dqkv, dout, qkv, lse, Dv, s, vec, stream); break;
    case 32: backward_d<32>(dqkv, dout, qkv, lse, Dv, s, vec, stream); break;
    case 64: backward_d<64>(dqkv, dout, qkv, lse, Dv, s, vec, stream); break;
    default: backward_d<128>(dqkv, dout, qkv, lse, Dv, s, vec, stream); break;
  }
}

}  // namespace sieve::cuda
