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
// scheme, grid, masks and summation order over tiles, with its own blocks: 4 warps over 64-row
// tiles, each warp running its products as mma.sync on registers (the scores never go through
// shared memory).
#include "attention.cuh"

#include <cmath>
#include <cstdint>

#include "common.cuh"
#include "reduce.cuh"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256;

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

// The bf16 path (D in {64, 128}): FlashAttention-2 on register-level tensor-core products,
// mma.sync.m16n8k16 (bf16 operands, fp32 accumulators) issued as inline PTX. Every kernel is a
// block of 4 warps over a tile of 64 rows; warp w owns 16 of them (rows 16 w .. 16 w + 15) for
// the whole kernel: queries in the forward and dQ, keys in dK/dV. The block iterates over tiles
// of 64 columns (keys, or queries for dK/dV) staged in shared memory as bf16; every product a
// warp needs reads only its own 16 rows and the shared tile, so the score tiles (S, dP, and P,
// dS after the softmax) never leave the warp's registers.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type");
// g = lane / 4 (groupID), t = lane % 4 (threadID_in_group); each .b32 holds two bf16, the
// lower-indexed element in the low half:
//   A (16 x 16, row-major), 4 regs: a0 (row g, cols 2t, 2t+1), a1 (row g+8, same cols),
//                                  a2 (row g, cols 2t+8, 2t+9), a3 (row g+8, cols 2t+8, 2t+9)
//   B (16 x 8, k x n), 2 regs:      b0 (k 2t, 2t+1; n g), b1 (k 2t+8, 2t+9; n g)
//   C (16 x 8, fp32), 4 floats:     c0, c1 (row g, cols 2t, 2t+1), c2, c3 (row g+8, same cols)
// So the C fragments of two adjacent 8-column tiles (columns 16 k .. 16 k + 15) hold exactly
// the A fragment of the 16 x 16 block at k once packed in pairs to bf16x2 (pack_a): a score
// tile turns into the A operand of the next product without moving between threads.
//
// ldmatrix.x4 loads four 8 x 8 bf16 matrices; lanes 8 i .. 8 i + 7 give the row addresses of
// matrix i and register i receives it: plain, lane gets (row g, cols 2t, 2t+1) of each matrix;
// .trans, (rows 2t, 2t+1, col g). Hence, for a tile X in shared memory:
//   - an A fragment of rows r0.., cols k0.. of a row-major X: lane l addresses row r0 + l % 16,
//     col k0 + 8 (l / 16) (ldsm_a);
//   - the B fragments of B = X^T (X (n, k) row-major: K in Q K^T, V in dO V^T, Q, dO in the
//     transposed products of dK/dV), two 8-column tiles n0, n0 + 8 at k0: plain ldmatrix, lane l
//     addresses row n0 + l % 8 + 8 (l / 16), col k0 + 8 ((l / 8) % 2) (ldsm_bt);
//   - the B fragments of B = X (X (k, n) row-major: V in P V, K in dS K, dO in P^T dO, Q in
//     dS^T Q): ldmatrix.trans, lane l addresses row k0 + l % 16, col n0 + 8 (l / 16) (ldsm_b).
// bf16 tiles have a row stride of D + 8 elements: the 8 rows of one matrix are then 16 bytes
// apart modulo 128, so an ldmatrix phase touches all 32 banks once, and every address it
// takes is 16-byte aligned as it must be.
using bf16 = __nv_bfloat16;

constexpr int kTile = 64;                 // rows per block = columns per staged tile
constexpr int kWarps = kTile / 16;        // each warp owns 16 rows
constexpr int kMmaThreads = 32 * kWarps;  // 128

// Bytes of dynamic shared memory of a bf16 kernel staging `tiles` bf16 tiles (kTile, D + 8) and
// `floats` more floats.
constexpr size_t bf16_smem(int D, int tiles, int floats) {
  return sizeof(bf16) * (size_t)tiles * kTile * (D + 8) + sizeof(float) * (size_t)floats;
}
// The largest (dK/dV at D = 128: K, V, Q, dO, lse, D) leaves room for two blocks per SM on sm_90;
// at D = 64 so does dK/dV's with its staging (Q, dO, lse, D in fp32), and the forward's (K, V in
// fp32) for three.
static_assert(bf16_smem(128, 4, 2 * kTile) <= 113 * 1024, "two blocks per SM");
static_assert(bf16_smem(64, 4, 4 * kTile + 2 * kTile * 64) <= 113 * 1024, "two blocks per SM");
static_assert(bf16_smem(64, 3, 2 * kTile * 64) <= 75 * 1024, "three blocks per SM");

// Rows [r0, r0 + kTile) of a head's (T, HS) fp32 slice (row stride ld in global memory) into
// shared memory as bf16 (kTile, D + 8), rounded to nearest even, zero past T and past HS.
template <int D>
__device__ __forceinline__ void load_tile_bf16(bf16* dst, const float* __restrict__ src, int64_t ld, int r0, int T,
                                               int HS, bool vec) {
  constexpr int lds = D + 8;
  if (vec) {  // HS % 4 == 0 and src, ld 16-byte aligned: a float4 is all inside HS or all outside
    // G float4 loads a thread in flight before their stores: one memory latency per G of the
    // thread's N, within the registers the kernels leave free (G = 8 at D = 64 spills in the
    // forward's three blocks per SM)
    constexpr int N = kTile * (D / 4) / kMmaThreads, G = 4;
    static_assert(N % G == 0, "whole groups");
#pragma unroll 1
    for (int i0 = 0; i0 < N; i0 += G) {
      float4 x[G];
#pragma unroll
      for (int i = 0; i < G; i++) {
        const int e = threadIdx.x + (i0 + i) * kMmaThreads, r = e / (D / 4), d = (e % (D / 4)) * 4;
        x[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (r0 + r < T && d < HS) x[i] = __ldg(reinterpret_cast<const float4*>(src + (int64_t)(r0 + r) * ld + d));
      }
#pragma unroll
      for (int i = 0; i < G; i++) {
        const int e = threadIdx.x + (i0 + i) * kMmaThreads, r = e / (D / 4), d = (e % (D / 4)) * 4;
        const __nv_bfloat162 lo = __floats2bfloat162_rn(x[i].x, x[i].y), hi = __floats2bfloat162_rn(x[i].z, x[i].w);
        uint2 packed;
        packed.x = *reinterpret_cast<const uint32_t*>(&lo);
        packed.y = *reinterpret_cast<const uint32_t*>(&hi);
        *reinterpret_cast<uint2*>(dst + r * lds + d) = packed;  // 8-byte aligned: lds and d are multiples of 4
      }
    }
  } else {
    for (int e = threadIdx.x; e < kTile * D; e += kMmaThreads) {
      const int r = e / D, d = e % D;
      dst[r * lds + d] = __float2bfloat16_rn((r0 + r < T && d < HS) ? __ldg(src + (int64_t)(r0 + r) * ld + d) : 0.0f);
    }
  }
}

// Keys and values [k0, k0 + kTile) of a head into Ks and Vs, once every warp is done with the
// previous tile (the barrier before), and visible to every warp on return (the barrier after).
template <int D>
__device__ __forceinline__ void load_kv_tile(bf16* Ks, bf16* Vs, const float* __restrict__ k,
                                             const float* __restrict__ v, int64_t ld, int k0, int T, int HS,
                                             bool vec) {
  __syncthreads();
  load_tile_bf16<D>(Ks, k, ld, k0, T, HS, vec);
  load_tile_bf16<D>(Vs, v, ld, k0, T, HS, vec);
  __syncthreads();
}

__device__ __forceinline__ uint32_t smem_address(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

// Staging (D = 64): a tile's fp32 rows are copied into shared memory with cp.async while the block
// computes on the previous tile, then rounded into its bf16 tile between two barriers, so the
// loads' latency hides behind the products instead of stalling every warp between the barriers
// (the synchronous loads leave the tensor cores idle while a block waits). The staging, two fp32
// tiles (32 KB), fits beside the bf16 tiles of two blocks per SM (three for the forward) at
// D = 64 only; D = 128 and the scalar (misaligned) loads keep load_tile_bf16.
template <int D>
constexpr bool kStaged = D == 64;

// 16 bytes from global to shared memory, asynchronously; zero-filled when !valid (src then is not
// read, but must be a global address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
// 4 bytes, the same way (lse and D: their rows need not be 16-byte aligned).
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(dst)), "l"(src),
               "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// This thread's copies landed; a barrier after it makes every thread's visible to all.
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Rows [r0, r0 + kTile) of a head's (T, HS) fp32 slice into fp32 staging (kTile, D), zero past T
// and past HS, asynchronously. Needs load_tile_bf16's vec conditions (16-byte float4s inside or
// outside HS).
template <int D>
__device__ __forceinline__ void stage_tile(float* dst, const float* __restrict__ src, int64_t ld, int r0, int T,
                                           int HS) {
  constexpr int N = kTile * (D / 4) / kMmaThreads;
#pragma unroll
  for (int i = 0; i < N; i++) {
    const int e = threadIdx.x + i * kMmaThreads, r = e / (D / 4), d = (e % (D / 4)) * 4;
    const bool valid = r0 + r < T && d < HS;
    cp_async16(dst + r * D + d, valid ? src + (int64_t)(r0 + r) * ld + d : src, valid);
  }
}

// A staged fp32 tile into a bf16 tile (kTile, D + 8), rounded to nearest even.
template <int D>
__device__ __forceinline__ void unstage_tile(bf16* dst, const float* src) {
  constexpr int N = kTile * (D / 4) / kMmaThreads;
#pragma unroll
  for (int i = 0; i < N; i++) {
    const int e = threadIdx.x + i * kMmaThreads, r = e / (D / 4), d = (e % (D / 4)) * 4;
    const float4 x = *reinterpret_cast<const float4*>(src + r * D + d);
    const __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y), hi = __floats2bfloat162_rn(x.z, x.w);
    uint2 packed;
    packed.x = *reinterpret_cast<const uint32_t*>(&lo);
    packed.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(dst + r * (D + 8) + d) = packed;
  }
}

// The keys and values [k0, k0 + kTile) into the staging Kf, Vf, asynchronously (one commit group).
template <int D>
__device__ __forceinline__ void stage_kv(float* Kf, float* Vf, const float* __restrict__ k,
                                         const float* __restrict__ v, int64_t ld, int k0, int T, int HS) {
  stage_tile<D>(Kf, k, ld, k0, T, HS);
  stage_tile<D>(Vf, v, ld, k0, T, HS);
  cp_async_commit();
}

// The keys and values [k0, k0 + kTile) into Ks and Vs for a loop over key tiles up to k_last:
// from the staging Kf, Vf (issued by the previous call, or before the loop for the first tile),
// then the next tile's copies issued, when staged; else loaded directly (load_kv_tile). Every
// warp is done with the previous tile on entry's barrier and sees the new one on return.
template <int D>
__device__ __forceinline__ void next_kv_tile(bf16* Ks, bf16* Vs, float* Kf, float* Vf, const float* __restrict__ k,
                                             const float* __restrict__ v, int64_t ld, int k0, int k_last, int T,
                                             int HS, bool vec) {
  if (!(kStaged<D> && vec)) {
    load_kv_tile<D>(Ks, Vs, k, v, ld, k0, T, HS, vec);
    return;
  }
  cp_async_wait_all();
  __syncthreads();
  unstage_tile<D>(Ks, Kf);
  unstage_tile<D>(Vs, Vf);
  __syncthreads();
  if (k0 + kTile <= k_last) stage_kv<D>(Kf, Vf, k, v, ld, k0 + kTile, T, HS);
}

// ldmatrix.x4 (plain or .trans) at this lane's row address p; volatile: it reads shared memory
// behind the compiler's back, so it must stay between the barriers around it.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}

// The A fragment of rows [r0, r0 + 16) x cols [k0, k0 + 16) of a row-major bf16 tile (stride ld).
__device__ __forceinline__ void ldsm_a(uint32_t (&a)[4], const bf16* X, int ld, int r0, int k0, int lane) {
  ldsm_x4(a, X + (r0 + lane % 16) * ld + k0 + 8 * (lane / 16));
}
// B = X^T over k [k0, k0 + 16) for the 8-column tiles n0 (b[0], b[1]) and n0 + 8 (b[2], b[3]),
// X (n, k) row-major with stride ld.
__device__ __forceinline__ void ldsm_bt(uint32_t (&b)[4], const bf16* X, int ld, int n0, int k0, int lane) {
  ldsm_x4(b, X + (n0 + lane % 8 + 8 * (lane / 16)) * ld + k0 + 8 * ((lane / 8) % 2));
}
// B = X over k [k0, k0 + 16) for the 8-column tiles n0 (b[0], b[1]) and n0 + 8 (b[2], b[3]),
// X (k, n) row-major with stride ld.
__device__ __forceinline__ void ldsm_b(uint32_t (&b)[4], const bf16* X, int ld, int k0, int n0, int lane) {
  ldsm_x4_trans(b, X + (k0 + lane % 16) * ld + n0 + 8 * (lane / 16));
}

// c += a b, one m16n8k16 product (fp32 accumulation in the tensor core's fixed order).
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats rounded to nearest even into one bf16x2 register, lo in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 x = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&x);
}
// The A fragment of columns [16 k, 16 k + 16) of a 16-row score tile held as C fragments.
template <int N>
__device__ __forceinline__ void pack_a(uint32_t (&a)[4], const float (&c)[N / 8][4], int k) {
  a[0] = pack_bf16(c[2 * k][0], c[2 * k][1]);
  a[1] = pack_bf16(c[2 * k][2], c[2 * k][3]);
  a[2] = pack_bf16(c[2 * k + 1][0], c[2 * k + 1][1]);
  a[3] = pack_bf16(c[2 * k + 1][2], c[2 * k + 1][3]);
}

template <int N>
__device__ __forceinline__ void zero(float (&c)[N][4]) {
#pragma unroll
  for (int j = 0; j < N; j++) c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.0f;
}

// acc[j] = X[r0 .. r0 + 16, :] Y[8 j .. 8 j + 8, :]^T for the N rows of Y: a 16 x N score tile
// (S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T), X and Y bf16 tiles (*, D + 8) in shared
// memory, summed over the head in steps of 16 in order.
template <int D, int N>
__device__ __forceinline__ void score_tile(float (&acc)[N / 8][4], const bf16* X, const bf16* Y, int r0, int lane) {
  constexpr int ld = D + 8;
  zero(acc);
#pragma unroll
  for (int k = 0; k < D; k += 16) {
    uint32_t a[4];
    ldsm_a(a, X, ld, r0, k, lane);
#pragma unroll
    for (int n = 0; n < N; n += 16) {
      uint32_t b[4];
      ldsm_bt(b, Y, ld, n, k, lane);
      mma(acc[n / 8], a, b[0], b[1]);
      mma(acc[n / 8 + 1], a, b[2], b[3]);
    }
  }
}

// acc += P Y: P a 16 x N score tile in C fragments (rounded to bf16 here), Y a bf16 tile (N,
// D + 8) in shared memory; summed over the N columns of P in steps of 16 in order.
template <int D, int N>
__device__ __forceinline__ void accumulate_tile(float (&acc)[D / 8][4], const float (&p)[N / 8][4], const bf16* Y,
                                                int lane) {
  constexpr int ld = D + 8;
#pragma unroll
  for (int k = 0; k < N / 16; k++) {
    uint32_t a[4];
    pack_a<N>(a, p, k);
#pragma unroll
    for (int n = 0; n < D; n += 16) {
      uint32_t b[4];
      ldsm_b(b, Y, ld, 16 * k, n, lane);
      mma(acc[n / 8], a, b[0], b[1]);
      mma(acc[n / 8 + 1], a, b[2], b[3]);
    }
  }
}

// A row's max or sum over the 4 threads of a quad (lanes 4 g .. 4 g + 3 share rows g, g + 8).
__device__ __forceinline__ float quad_max(float x) {
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

// A thread's half of a 16 x N C-fragment tile, (row, column) = (g + 8 h, 8 j + 2 t + e) for
// element [j][2 h + e], f times its value into dst's rows (row stride ld floats, dst at the
// warp's first row, rows at or past `valid` skipped) and columns below HS.
template <int N>
__device__ __forceinline__ void store_rows(float* dst, int64_t ld, const float (&acc)[N / 8][4], float f, int valid,
                                           int HS, int lane) {
  const int g = lane / 4, t = lane % 4;
#pragma unroll
  for (int h = 0; h < 2; h++) {
    const int r = g + 8 * h;
    if (r >= valid) continue;
    float* row = dst + (int64_t)r * ld;
#pragma unroll
    for (int j = 0; j < N / 8; j++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int c = 8 * j + 2 * t + e;
        if (c < HS) row[c] = f * acc[j][2 * h + e];
      }
  }
}

// Forward: blockIdx as attention_forward_kernel's (64 queries). Warp w: queries q0 + 16 w ..;
// its Q fragments stay in registers; per key tile S = Q K^T, the online softmax on the
// accumulators (row max and sum over each quad; P rounded to bf16, the row sums from fp32 p),
// o = o corr + P V. At D = 64 three blocks share an SM (at most 168 registers a thread, no
// spills), so more of one block's tile loads hide behind the others' products.
template <int D>
__global__ void __launch_bounds__(kMmaThreads, D == 64 ? 3 : 2) attention_forward_bf16_kernel(float* __restrict__ out,
                                                                             bf16* __restrict__ out_bf16,
                                                                             float* __restrict__ lse,
                                                                             const float* __restrict__ qkv, int T,
                                                                             int C, int NH, int HS, float scale,
                                                                             bool vec) {
  constexpr int ld = D + 8, NS = kTile / 8, NO = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + kTile * ld;
  bf16* Vs = Ks + kTile * ld;
  float* Kf = reinterpret_cast<float*>(Vs + kTile * ld);  // the staging, when kStaged<D>
  float* Vf = Kf + kTile * D;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * kTile;
  const int row0 = q0 + 16 * warp;  // the warp's first query
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  const int q_last = min(q0 + kTile, T) - 1;
  if (kStaged<D> && vec) stage_kv<D>(Kf, Vf, k, v, ldg, 0, T, HS);  // the first tile, for next_kv_tile
  load_tile_bf16<D>(Qs, q, ldg, q0, T, HS, vec);
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) ldsm_a(qf[kk], Qs, ld, 16 * warp, 16 * kk, lane);

  // [0]: row g, [1]: row g + 8 of the warp's 16
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};  // this thread's share of the row sum, rescaled with the row's max
  float o[NO][4];
  zero(o);
  for (int k0 = 0; k0 <= q_last; k0 += kTile) {
    next_kv_tile<D>(Ks, Vs, Kf, Vf, k, v, ldg, k0, q_last, T, HS, vec);
    float s[NS][4];
    zero(s);
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
      for (int n = 0; n < kTile; n += 16) {
        uint32_t bfr[4];
        ldsm_bt(bfr, Ks, ld, n, 16 * kk, lane);
        mma(s[n / 8], qf[kk], bfr[0], bfr[1]);
        mma(s[n / 8 + 1], qf[kk], bfr[2], bfr[3]);
      }
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const int r = row0 + g + 8 * hr;
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < NS; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float& x = s[j][2 * hr + e];
          x = k0 + 8 * j + 2 * t + e <= r ? x * scale : -INFINITY;
          mx = fmaxf(mx, x);
        }
      // finite: key 0 is in the first tile and every row r >= 0 sees it
      const float m_new = fmaxf(m[hr], quad_max(mx));
      const float corr = expf(m[hr] - m_new);  // 0 on the first tile (m = -inf)
      m[hr] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < NS; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float& x = s[j][2 * hr + e];
          x = expf(x - m_new);  // masked: exp(-inf) = 0
          sum += x;
        }
      l[hr] = l[hr] * corr + sum;
#pragma unroll
      for (int j = 0; j < NO; j++) o[j][2 * hr] *= corr, o[j][2 * hr + 1] *= corr;
    }
    accumulate_tile<D, kTile>(o, s, Vs, lane);
  }

  float* out_rows = out + ((int64_t)b * T + row0) * C + (int64_t)h * HS;
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = row0 + g + 8 * hr;
    const float L = quad_sum(l[hr]);  // every lane takes part
    const float inv = 1.0f / L;
#pragma unroll
    for (int j = 0; j < NO; j++) o[j][2 * hr] *= inv, o[j][2 * hr + 1] *= inv;
    if (lse && t == 0 && r < T) lse[(int64_t)bh * T + r] = m[hr] + logf(L);
  }
  store_rows<D>(out_rows, C, o, 1.0f, T - row0, HS, lane);
  if (out_bf16) {
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      const int r = g + 8 * hr;
      if (row0 + r >= T) continue;
      bf16* row = out_bf16 + ((int64_t)b * T + row0 + r) * C + (int64_t)h * HS;
#pragma unroll
      for (int j = 0; j < NO; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const int c = 8 * j + 2 * t + e;
          if (c < HS) row[c] = __float2bfloat16_rn(o[j][2 * hr + e]);
        }
    }
  }
}

// dQ: blockIdx as attention_dq_kernel's (64 queries). Warp w: queries q0 + 16 w ..; per key
// tile S = Q K^T and dP = dO V^T into registers, dS = P (dP - D) with P = exp(scale S - lse) on
// the accumulators, dQ += dS K with dS rounded to bf16 straight from them.
template <int D>
__global__ void __launch_bounds__(kMmaThreads, 2) attention_dq_bf16_kernel(float* __restrict__ dqkv,
                                                                        const float* __restrict__ dout,
                                                                        const float* __restrict__ qkv,
                                                                        const float* __restrict__ lse,
                                                                        const float* __restrict__ Dv, int T, int C,
                                                                        int NH, int HS, float scale, bool vec) {
  constexpr int ld = D + 8, NS = kTile / 8, NO = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* dOs = Qs + kTile * ld;
  bf16* Ks = dOs + kTile * ld;
  bf16* Vs = Ks + kTile * ld;
  float* Kf = reinterpret_cast<float*>(Vs + kTile * ld);  // the staging, when kStaged<D>
  float* Vf = Kf + kTile * D;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int q0 = (int)(gridDim.y - 1 - blockIdx.y) * kTile;
  const int row0 = q0 + 16 * warp;
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* k = q + C;
  const float* v = q + 2 * C;

  const int q_last = min(q0 + kTile, T) - 1;
  if (kStaged<D> && vec) stage_kv<D>(Kf, Vf, k, v, ldg, 0, T, HS);  // the first tile, for next_kv_tile
  load_tile_bf16<D>(Qs, q, ldg, q0, T, HS, vec);
  load_tile_bf16<D>(dOs, dout + (int64_t)b * T * C + (int64_t)h * HS, C, q0, T, HS, vec);
  float row_lse[2], row_D[2];  // rows g, g + 8 of the warp's 16
#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    const int r = row0 + g + 8 * hr;
    row_lse[hr] = r < T ? lse[(int64_t)bh * T + r] : 0.0f;
    row_D[hr] = r < T ? Dv[(int64_t)bh * T + r] : 0.0f;
  }
  float dq[NO][4];
  zero(dq);
  for (int k0 = 0; k0 <= q_last; k0 += kTile) {
    next_kv_tile<D>(Ks, Vs, Kf, Vf, k, v, ldg, k0, q_last, T, HS, vec);
    float s[NS][4], dp[NS][4];
    score_tile<D, kTile>(s, Qs, Ks, 16 * warp, lane);
    score_tile<D, kTile>(dp, dOs, Vs, 16 * warp, lane);
#pragma unroll
    for (int j = 0; j < NS; j++)
#pragma unroll
      for (int i = 0; i < 4; i++) {
        const int hr = i / 2, r = row0 + g + 8 * hr, c = k0 + 8 * j + 2 * t + i % 2;
        const float p = (c <= r && r < T) ? expf(s[j][i] * scale - row_lse[hr]) : 0.0f;
        s[j][i] = p * (dp[j][i] - row_D[hr]);  // dS
      }
    accumulate_tile<D, kTile>(dq, s, Ks, lane);
  }
  store_rows<D>(dqkv + ((int64_t)b * T + row0) * ldg + (int64_t)h * HS, ldg, dq, scale, T - row0, HS, lane);
}

// dK, dV: blockIdx as attention_dkv_kernel's (64 keys). Warp w: keys k0 + 16 w ..; per query
// tile S^T = K Q^T into registers, P^T = exp(scale S^T - lse) on the accumulators, dV += P^T dO;
// then dP^T = V dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q; P^T and dS^T rounded to bf16
// straight from the accumulators (the fp32 P^T is what dS^T is computed from).
template <int D>
__global__ void __launch_bounds__(kMmaThreads, 2) attention_dkv_bf16_kernel(float* __restrict__ dqkv,
                                                                         const float* __restrict__ dout,
                                                                         const float* __restrict__ qkv,
                                                                         const float* __restrict__ lse,
                                                                         const float* __restrict__ Dv, int T, int C,
                                                                         int NH, int HS, float scale, bool vec) {
  constexpr int ld = D + 8, NO = D / 8, NQ = D == 128 ? 32 : kTile;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + kTile * ld;
  bf16* Qs = Vs + kTile * ld;
  bf16* dOs = Qs + kTile * ld;
  float* col_lse = reinterpret_cast<float*>(dOs + kTile * ld);  // the query tile's lse and D
  float* col_D = col_lse + kTile;
  float* Qf = col_D + kTile;  // the staging of Q, dO, lse and D, when kStaged<D>
  float* dOf = Qf + kTile * D;
  float* lse_f = dOf + kTile * D;
  float* D_f = lse_f + kTile;

  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, t = lane % 4;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int k0 = (int)blockIdx.y * kTile;
  const int row0 = k0 + 16 * warp;  // the warp's first key
  const int64_t ldg = 3 * (int64_t)C;
  const float* q = qkv + (int64_t)b * T * ldg + (int64_t)h * HS;
  const float* dy = dout + (int64_t)b * T * C + (int64_t)h * HS;

  load_tile_bf16<D>(Ks, q + C, ldg, k0, T, HS, vec);
  load_tile_bf16<D>(Vs, q + 2 * C, ldg, k0, T, HS, vec);
  float dk[NO][4], dv[NO][4];
  zero(dk);
  zero(dv);
  const bool staged = kStaged<D> && vec;
  // the query tile q0's Q, dO, lse and D into the staging (threads 0..63 copy lse, 64..127 D)
  const auto stage = [&](int q0) {
    stage_tile<D>(Qf, q, ldg, q0, T, HS);
    stage_tile<D>(dOf, dy, C, q0, T, HS);
    const int i = threadIdx.x % kTile, c = q0 + i;
    const float* src = (threadIdx.x < kTile ? lse : Dv) + (int64_t)bh * T;
    cp_async4((threadIdx.x < kTile ? lse_f : D_f) + i, c < T ? src + c : src, c < T);
    cp_async_commit();
  };
  if (staged) stage(k0);
  // queries before k0 see none of these keys
  for (int q0 = k0; q0 < T; q0 += kTile) {
    if (staged) {
      cp_async_wait_all();
      __syncthreads();  // the previous tile's Q, dO, lse and D are read by every warp; this one's landed
      unstage_tile<D>(Qs, Qf);
      unstage_tile<D>(dOs, dOf);
      if (threadIdx.x < kTile) col_lse[threadIdx.x] = lse_f[threadIdx.x], col_D[threadIdx.x] = D_f[threadIdx.x];
      __syncthreads();
      if (q0 + kTile < T) stage(q0 + kTile);
    } else {
      __syncthreads();  // the previous tile's Q, dO, lse and D are read by every warp
      load_tile_bf16<D>(Qs, q, ldg, q0, T, HS, vec);
      load_tile_bf16<D>(dOs, dy, C, q0, T, HS, vec);
      if (threadIdx.x < kTile) {
        const int c = q0 + threadIdx.x;
        col_lse[threadIdx.x] = c < T ? lse[(int64_t)bh * T + c] : 0.0f;
        col_D[threadIdx.x] = c < T ? Dv[(int64_t)bh * T + c] : 0.0f;
      }
      __syncthreads();
    }
    // the query tile in parts of NQ columns: at D = 128 two live 16 x 64 fp32 score tiles next to
    // dK and dV would not fit in the registers; the parts keep the order of the sums
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += NQ) {
      const bf16* Qp = Qs + c0 * ld;
      const bf16* dOp = dOs + c0 * ld;
      float pt[NQ / 8][4];
      score_tile<D, NQ>(pt, Ks, Qp, 16 * warp, lane);
#pragma unroll
      for (int j = 0; j < NQ / 8; j++) {
        const int jc = c0 + 8 * j + 2 * t;  // this thread's query columns jc, jc + 1 in the tile
        const float2 cl = *reinterpret_cast<const float2*>(col_lse + jc);
#pragma unroll
        for (int i = 0; i < 4; i++) {
          const int r = row0 + g + 8 * (i / 2), c = q0 + jc + i % 2;
          pt[j][i] = (r <= c && c < T) ? expf(pt[j][i] * scale - (i % 2 ? cl.y : cl.x)) : 0.0f;
        }
      }
      accumulate_tile<D, NQ>(dv, pt, dOp, lane);
      float dst[NQ / 8][4];
      score_tile<D, NQ>(dst, Vs, dOp, 16 * warp, lane);
#pragma unroll
      for (int j = 0; j < NQ / 8; j++) {
        const float2 cd = *reinterpret_cast<const float2*>(col_D + c0 + 8 * j + 2 * t);
#pragma unroll
        for (int i = 0; i < 4; i++) dst[j][i] = pt[j][i] * (dst[j][i] - (i % 2 ? cd.y : cd.x));
      }
      accumulate_tile<D, NQ>(dk, dst, Qp, lane);
    }
  }
  float* dk_rows = dqkv + ((int64_t)b * T + row0) * ldg + C + (int64_t)h * HS;
  store_rows<D>(dk_rows, ldg, dk, scale, T - row0, HS, lane);
  store_rows<D>(dk_rows + C, ldg, dv, 1.0f, T - row0, HS, lane);
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
  constexpr size_t bytes = bf16_smem(D, 3, kStaged<D> ? 2 * kTile * D : 0);  // Q, K, V; K, V staged
  static const bool opted = (allow_smem(attention_forward_bf16_kernel<D>, bytes), true);
  (void)opted;
  const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, kTile));
  attention_forward_bf16_kernel<D><<<grid, kMmaThreads, bytes, stream>>>(out, out_bf16, lse, qkv, s.T, s.C, s.NH, s.HS,
                                                                      1.0f / std::sqrt((float)s.HS), vec);
  SIEVE_LAUNCHED();
}

template <int D>
void backward_bf16_d(float* dqkv, const float* dout, const float* qkv, const float* lse, const float* Dv,
                     const Shape& s, bool vec, cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt((float)s.HS);
  const dim3 grid((unsigned)(s.B * s.NH), tiles(s.T, kTile));
  {
    // K, V, Q, dO; lse, D; Q, dO, lse, D staged
    constexpr size_t bytes = bf16_smem(D, 4, 2 * kTile + (kStaged<D> ? 2 * kTile * D + 2 * kTile : 0));
    static const bool opted = (allow_smem(attention_dkv_bf16_kernel<D>, bytes), true);
    (void)opted;
    attention_dkv_bf16_kernel<D><<<grid, kMmaThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH, s.HS,
                                                                    scale, vec);
    SIEVE_LAUNCHED();
  }
  {
    constexpr size_t bytes = bf16_smem(D, 4, kStaged<D> ? 2 * kTile * D : 0);  // Q, dO, K, V; K, V staged
    static const bool opted = (allow_smem(attention_dq_bf16_kernel<D>, bytes), true);
    (void)opted;
    attention_dq_bf16_kernel<D><<<grid, kMmaThreads, bytes, stream>>>(dqkv, dout, qkv, lse, Dv, s.T, s.C, s.NH, s.HS,
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
