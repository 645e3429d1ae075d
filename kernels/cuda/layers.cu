// layers.cu — the per-layer ops of the GPU model (promises in layers.cuh; the maths is
// cpu/norm.cc, activation.cc, embedding.cc, matmul.cc, attention.cc's RoPE and loss.cc, which
// test/gpu/layers_checks.cu holds these to).
//
// Exactness: nvcc contracts a * b + c into an FMA by default, which the CPU build forbids
// (-ffp-contract=off), so every product that meets a sum goes through __fmul_rn and every
// sum after a product through __fadd_rn/__fsub_rn, in the association of the CPU's expression.
// Sums of plain loads (the embedding and bias gradients) cannot be contracted and stay plain.
//
// Determinism without atomics: a sum over rows is split into the CPU's chunks of 64 rows, one
// thread per (chunk, column) adds its chunk in row order, and a second kernel adds the chunks
// in order; a row's statistics are the CPU's 16 lanes held by a half-warp.
#include "layers.cuh"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common.cuh"
#include "reduce.cuh"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 16;  // cpu/common.h's fixed lanes: lane j sums elements j, j + 16, ...
constexpr int kRowsPerBlock = kThreads / kLanes;
constexpr int64_t kRowChunk = 64;  // cpu/norm.cc and matmul.cc's chunk of rows for column sums

__host__ __device__ inline int64_t row_chunks(int64_t N) { return (N + kRowChunk - 1) / kRowChunk; }

// ---------------------------------------------------------------- device arithmetic

// cpu/common.h's exp_f32, operation for operation.
__device__ __forceinline__ float exp_f32(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const float shifter = 12582912.0f;
  const float n = __fsub_rn(__fadd_rn(__fmul_rn(xc, 1.44269504088896341f), shifter), shifter);
  float r = __fsub_rn(xc, __fmul_rn(n, 0.693359375f));
  r = __fsub_rn(r, __fmul_rn(n, -2.12194440e-4f));
  const float r2 = __fmul_rn(r, r);
  float p = 1.9875691500e-4f;
  p = __fadd_rn(__fmul_rn(p, r), 1.3981999507e-3f);
  p = __fadd_rn(__fmul_rn(p, r), 8.3334519073e-3f);
  p = __fadd_rn(__fmul_rn(p, r), 4.1665795894e-2f);
  p = __fadd_rn(__fmul_rn(p, r), 1.6666665459e-1f);
  p = __fadd_rn(__fmul_rn(p, r), 5.0000001201e-1f);
  const float e = __fadd_rn(__fadd_rn(__fmul_rn(p, r2), r), 1.0f);
  float y = __fmul_rn(e, __int_as_float(((int)n + 127) << 23));
  y = x < lo ? 0.0f : y;
  y = x > hi ? __int_as_float(0x7f800000) : y;
  return y;
}

__device__ __forceinline__ float sigmoid_f32(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, exp_f32(-x))); }
__device__ __forceinline__ float tanh_f32(float x) {
  return __fsub_rn(1.0f, __fdiv_rn(2.0f, __fadd_rn(exp_f32(__fmul_rn(2.0f, x)), 1.0f)));
}

// ---------------------------------------------------------------- row statistics: a half-warp per row

// The half-warp's lanes (a row's 16 threads), for the shuffles.
__device__ __forceinline__ unsigned row_lanes() { return 0xffffu << (threadIdx.x & 16); }
__device__ __forceinline__ int64_t first_row() { return ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / kLanes; }
__device__ __forceinline__ int64_t row_stride() { return (int64_t)gridDim.x * blockDim.x / kLanes; }

// The CPU's combination of its 16 lanes (for w = 8, 4, 2, 1: lane j += lane j + w), in every lane.
__device__ __forceinline__ float lanes_total(float acc, unsigned lanes) {
#pragma unroll
  for (int w = kLanes / 2; w > 0; w >>= 1) acc = __fadd_rn(acc, __shfl_down_sync(lanes, acc, w, kLanes));
  return __shfl_sync(lanes, acc, 0, kLanes);
}

__device__ __forceinline__ void store(float* out, __nv_bfloat16* out_bf16, int64_t i, float v) {
  if (out) out[i] = v;
  if (out_bf16) out_bf16[i] = __float2bfloat16_rn(v);
}

__global__ void __launch_bounds__(kThreads)
    layernorm_forward_kernel(float* __restrict__ out, __nv_bfloat16* __restrict__ out_bf16, float* __restrict__ mean,
                             float* __restrict__ rstd, const float* __restrict__ inp, const float* __restrict__ weight,
                             const float* __restrict__ bias, float eps, int64_t N, int64_t C) {
  const int j = threadIdx.x % kLanes;
  const unsigned lanes = row_lanes();
  for (int64_t r = first_row(); r < N; r += row_stride()) {
    const float* x = inp + r * C;
    float acc = 0.0f;
    for (int64_t c = j; c < C; c += kLanes) acc = __fadd_rn(acc, x[c]);
    const float m = __fdiv_rn(lanes_total(acc, lanes), (float)C);
    acc = 0.0f;  // variance, two-pass
    for (int64_t c = j; c < C; c += kLanes) {
      const float d = __fsub_rn(x[c], m);
      acc = __fadd_rn(acc, __fmul_rn(d, d));
    }
    const float s = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(lanes_total(acc, lanes), (float)C), eps)));
    for (int64_t c = j; c < C; c += kLanes)
      store(out, out_bf16, r * C + c, __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x[c], m), s), weight[c]), bias[c]));
    if (j == 0) {
      mean[r] = m;
      rstd[r] = s;
    }
  }
}

// dx += s (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = dy w, xhat = (x - m) s
__global__ void __launch_bounds__(kThreads)
    layernorm_backward_rows(float* __restrict__ dinp, const float* __restrict__ dout, const float* __restrict__ inp,
                            const float* __restrict__ mean, const float* __restrict__ rstd,
                            const float* __restrict__ weight, int64_t N, int64_t C) {
  const int j = threadIdx.x % kLanes;
  const unsigned lanes = row_lanes();
  for (int64_t r = first_row(); r < N; r += row_stride()) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    const float m = mean[r], s = rstd[r];
    float sum_d = 0.0f, sum_dx = 0.0f;
    for (int64_t c = j; c < C; c += kLanes) {
      const float xh = __fmul_rn(__fsub_rn(x[c], m), s), dn = __fmul_rn(dy[c], weight[c]);
      sum_d = __fadd_rn(sum_d, dn);
      sum_dx = __fadd_rn(sum_dx, __fmul_rn(dn, xh));
    }
    const float mean_d = __fdiv_rn(lanes_total(sum_d, lanes), (float)C);
    const float mean_dx = __fdiv_rn(lanes_total(sum_dx, lanes), (float)C);
    float* dx = dinp + r * C;
    for (int64_t c = j; c < C; c += kLanes) {
      const float xh = __fmul_rn(__fsub_rn(x[c], m), s), dn = __fmul_rn(dy[c], weight[c]);
      dx[c] = __fadd_rn(dx[c], __fmul_rn(s, __fsub_rn(__fsub_rn(dn, mean_d), __fmul_rn(xh, mean_dx))));
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    rmsnorm_forward_kernel(float* __restrict__ out, __nv_bfloat16* __restrict__ out_bf16, float* __restrict__ rstd,
                           const float* __restrict__ inp, const float* __restrict__ weight, float eps, int64_t N,
                           int64_t C) {
  const int j = threadIdx.x % kLanes;
  const unsigned lanes = row_lanes();
  for (int64_t r = first_row(); r < N; r += row_stride()) {
    const float* x = inp + r * C;
    float acc = 0.0f;
    for (int64_t c = j; c < C; c += kLanes) acc = __fadd_rn(acc, __fmul_rn(x[c], x[c]));
    const float s = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(lanes_total(acc, lanes), (float)C), eps)));
    for (int64_t c = j; c < C; c += kLanes) store(out, out_bf16, r * C + c, __fmul_rn(__fmul_rn(x[c], s), weight[c]));
    if (j == 0) rstd[r] = s;
  }
}

// dx += s (dxhat - xhat mean(dxhat xhat)), xhat = x s
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_rows(float* __restrict__ dinp, const float* __restrict__ dout, const float* __restrict__ inp,
                          const float* __restrict__ rstd, const float* __restrict__ weight, int64_t N, int64_t C) {
  const int j = threadIdx.x % kLanes;
  const unsigned lanes = row_lanes();
  for (int64_t r = first_row(); r < N; r += row_stride()) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    const float s = rstd[r];
    float acc = 0.0f;
    for (int64_t c = j; c < C; c += kLanes) acc = __fadd_rn(acc, __fmul_rn(__fmul_rn(dy[c], weight[c]), x[c]));
    const float mean_dx = __fdiv_rn(__fmul_rn(lanes_total(acc, lanes), s), (float)C);
    float* dx = dinp + r * C;
    for (int64_t c = j; c < C; c += kLanes) {
      const float dn = __fmul_rn(dy[c], weight[c]);
      dx[c] = __fadd_rn(dx[c], __fmul_rn(s, __fsub_rn(dn, __fmul_rn(__fmul_rn(x[c], s), mean_dx))));
    }
  }
}

// ---------------------------------------------------------------- column sums over rows, in fixed chunks

// The terms summed over rows for each column: Terms::kOut sums. load(r, c) reads row r's inputs at
// column c (no writes: the caller issues several rows' loads before their sums), add(acc, v, r, c)
// adds its terms and writes what the pass also produces.
struct LayerNormTerms {  // [dweight: dy xhat | dbias: dy]
  static constexpr int kOut = 2;
  struct Vals { float dy, x, m, s; };
  const float *dout, *inp, *mean, *rstd;
  int64_t C;
  __device__ __forceinline__ Vals load(int64_t r, int64_t c) const {
    return {dout[r * C + c], inp[r * C + c], mean[r], rstd[r]};
  }
  __device__ __forceinline__ void add(float* acc, const Vals& v, int64_t, int64_t) const {
    const float xh = __fmul_rn(__fsub_rn(v.x, v.m), v.s);
    acc[0] = __fadd_rn(acc[0], __fmul_rn(v.dy, xh));
    acc[1] = __fadd_rn(acc[1], v.dy);
  }
};
struct RmsNormTerms {  // dweight: dy x s
  static constexpr int kOut = 1;
  struct Vals { float dy, x, s; };
  const float *dout, *inp, *rstd;
  int64_t C;
  __device__ __forceinline__ Vals load(int64_t r, int64_t c) const { return {dout[r * C + c], inp[r * C + c], rstd[r]}; }
  __device__ __forceinline__ void add(float* acc, const Vals& v, int64_t, int64_t) const {
    acc[0] = __fadd_rn(acc[0], __fmul_rn(__fmul_rn(v.dy, v.x), v.s));
  }
};
struct ColumnTerms {  // dbias: dout (and dout's bf16 copy, on the way)
  static constexpr int kOut = 1;
  struct Vals { float x; };
  const float* dout;
  __nv_bfloat16* dout_bf16;  // or null
  int64_t C;
  __device__ __forceinline__ Vals load(int64_t r, int64_t c) const { return {dout[r * C + c]}; }
  __device__ __forceinline__ void add(float* acc, const Vals& v, int64_t r, int64_t c) const {
    acc[0] = __fadd_rn(acc[0], v.x);
    if (dout_bf16) dout_bf16[r * C + c] = __float2bfloat16_rn(v.x);
  }
};

// partial[o][k][c] = sum over chunk k's rows, in row order from 0, of term o at (r, c). A thread
// loads kBatch rows before adding them: one dependent load at a time left too few bytes in flight
// to fill the memory system (a one-wave grid at C = 1024).
template <class Terms>
__global__ void __launch_bounds__(kThreads) column_partials(float* __restrict__ partial, Terms terms, int64_t N,
                                                            int64_t C) {
  constexpr int kBatch = 8;
  const int64_t total = row_chunks(N) * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t k = i / C, c = i % C, r1 = N < (k + 1) * kRowChunk ? N : (k + 1) * kRowChunk;
    float acc[Terms::kOut] = {};
    for (int64_t r0 = k * kRowChunk; r0 < r1; r0 += kBatch) {
      typename Terms::Vals v[kBatch];
#pragma unroll
      for (int j = 0; j < kBatch; j++)
        if (r0 + j < r1) v[j] = terms.load(r0 + j, c);
#pragma unroll
      for (int j = 0; j < kBatch; j++)
        if (r0 + j < r1) terms.add(acc, v[j], r0 + j, c);
    }
#pragma unroll
    for (int o = 0; o < Terms::kOut; o++) partial[o * total + i] = acc[o];
  }
}

// a + p[0] + p[C] + ... + p[(chunks - 1) C], added in that order. Only C threads run this (one
// per column), so each loads kBatch partial sums before adding them: the loads overlap while
// the additions keep the CPU's order (one dependent load at a time made it latency-bound, ~100 µs).
__device__ __forceinline__ float add_in_order(float a, const float* __restrict__ p, int64_t chunks, int64_t C) {
  constexpr int kBatch = 16;
  int64_t k = 0;
  for (; k + kBatch <= chunks; k += kBatch) {
    float v[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; j++) v[j] = p[(k + j) * C];
#pragma unroll
    for (int j = 0; j < kBatch; j++) a += v[j];
  }
  for (; k < chunks; k++) a += p[k * C];
  return a;
}

// out_o[c] += partial[o][k][c] for k in order (out1 null: one sum)
__global__ void __launch_bounds__(kThreads) column_finish(float* __restrict__ out0, float* __restrict__ out1,
                                                          const float* __restrict__ partial, int64_t chunks, int64_t C) {
  for (int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; c < C; c += (int64_t)gridDim.x * blockDim.x) {
    out0[c] = add_in_order(out0[c], partial + c, chunks, C);
    if (out1) out1[c] = add_in_order(out1[c], partial + chunks * C + c, chunks, C);
  }
}

template <class Terms>
void column_sums(float* out0, float* out1, const Terms& terms, float* scratch, int64_t N, int64_t C,
                 cudaStream_t stream) {
  const int64_t chunks = row_chunks(N);
  if (chunks == 0 || C == 0) return;
  column_partials<<<grid_for(chunks * C, kThreads), kThreads, 0, stream>>>(scratch, terms, N, C);
  SIEVE_LAUNCHED();
  column_finish<<<grid_for(C, kThreads), kThreads, 0, stream>>>(out0, out1, scratch, chunks, C);
  SIEVE_LAUNCHED();
}

// ---------------------------------------------------------------- LayerNorm's backward, fused by chunk

// Where every row is whole float4s (C % 4 == 0, 16-byte aligned), one block per chunk of
// kRowChunk rows does both of layernorm_backward_rows and column_partials' work for the chunk:
// dout and inp come from memory once (the partials re-read the chunk's rows while L2 holds them)
// and a float4 per load. Same bits as those two kernels: a row's 16 lanes are held 4 to a thread
// (thread q of the row's 4 holds lanes 4q .. 4q + 3 in its float4's components, so lane j still
// sums elements j, j + 16, ... in order) and combined in the CPU's tree; each column's partial
// adds the chunk's rows in row order.
constexpr int kRowThreads = 4;
static_assert(kThreads == kRowChunk * kRowThreads, "a block holds one chunk's rows, 4 threads each");

// The CPU's total of a row's 16 lanes (w = 8, 4, 2, 1: lane j += lane j + w), the lanes held 4 to a
// thread as above, in each of the row's 4 threads (lanes `group` of the warp).
__device__ __forceinline__ float row_total(float4 a, unsigned group) {
  // w = 8: lanes j, j + 8 are threads q, q + 2 (q < 2); w = 4: lanes j, j + 4 are threads 0, 1
  for (int d = 2; d > 0; d >>= 1) {
    a.x = __fadd_rn(a.x, __shfl_down_sync(group, a.x, d, kRowThreads));
    a.y = __fadd_rn(a.y, __shfl_down_sync(group, a.y, d, kRowThreads));
    a.z = __fadd_rn(a.z, __shfl_down_sync(group, a.z, d, kRowThreads));
    a.w = __fadd_rn(a.w, __shfl_down_sync(group, a.w, d, kRowThreads));
  }
  // w = 2, then 1, inside thread 0
  const float total = __fadd_rn(__fadd_rn(a.x, a.z), __fadd_rn(a.y, a.w));
  return __shfl_sync(group, total, 0, kRowThreads);
}

// sum_d += dn, sum_dx += dn xhat for one element (layernorm_backward_rows' first pass)
__device__ __forceinline__ void row_sums(float& sum_d, float& sum_dx, float x, float dy, float w, float m, float s) {
  const float xh = __fmul_rn(__fsub_rn(x, m), s), dn = __fmul_rn(dy, w);
  sum_d = __fadd_rn(sum_d, dn);
  sum_dx = __fadd_rn(sum_dx, __fmul_rn(dn, xh));
}
// dx += s (dn - mean_d - xhat mean_dx) for one element (its second pass)
__device__ __forceinline__ float row_grad(float dx, float x, float dy, float w, float m, float s, float mean_d,
                                          float mean_dx) {
  const float xh = __fmul_rn(__fsub_rn(x, m), s), dn = __fmul_rn(dy, w);
  return __fadd_rn(dx, __fmul_rn(s, __fsub_rn(__fsub_rn(dn, mean_d), __fmul_rn(xh, mean_dx))));
}
// LayerNormTerms for one element
__device__ __forceinline__ void column_terms(float& dw, float& db, float x, float dy, float m, float s) {
  dw = __fadd_rn(dw, __fmul_rn(dy, __fmul_rn(__fsub_rn(x, m), s)));
  db = __fadd_rn(db, dy);
}

// The chunk's column pass of a fused norm backward: f(i, x, dy) for its rows i in order at float4
// column c, kBatch rows' loads in flight before their sums (the rows are in L2 from the row pass).
template <class F>
__device__ __forceinline__ void chunk_column(const float4* __restrict__ x4, const float4* __restrict__ dy4,
                                             int64_t r0, int rows, int64_t C4, int64_t c, F f) {
  constexpr int kBatch = 8;
  for (int i0 = 0; i0 < rows; i0 += kBatch) {
    float4 x[kBatch], dy[kBatch];
#pragma unroll
    for (int j = 0; j < kBatch; j++)
      if (i0 + j < rows) x[j] = x4[(r0 + i0 + j) * C4 + c], dy[j] = dy4[(r0 + i0 + j) * C4 + c];
#pragma unroll
    for (int j = 0; j < kBatch; j++) {
      if (i0 + j >= rows) break;
      f(i0 + j, x[j], dy[j]);
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    layernorm_backward_chunks(float* __restrict__ dinp, float* __restrict__ partial, const float* __restrict__ dout,
                              const float* __restrict__ inp, const float* __restrict__ mean,
                              const float* __restrict__ rstd, const float* __restrict__ weight, int64_t N, int64_t C) {
  __shared__ float chunk_mean[kRowChunk], chunk_rstd[kRowChunk];
  const int64_t k = blockIdx.x, r0 = k * kRowChunk, C4 = C / 4;
  const int rows = (int)(N - r0 < kRowChunk ? N - r0 : kRowChunk);
  const float4* x4 = reinterpret_cast<const float4*>(inp);
  const float4* dy4 = reinterpret_cast<const float4*>(dout);
  const float4* w4 = reinterpret_cast<const float4*>(weight);

  const int i = threadIdx.x / kRowThreads, q = threadIdx.x % kRowThreads;
  if (i < rows) {  // a row's 4 threads are consecutive lanes: they skip together
    const unsigned group = 0xfu << (threadIdx.x & 28);
    const int64_t row = (r0 + i) * C4;
    const float m = mean[r0 + i], s = rstd[r0 + i];
    if (q == 0) chunk_mean[i] = m, chunk_rstd[i] = s;
    float4 sum_d = make_float4(0.0f, 0.0f, 0.0f, 0.0f), sum_dx = sum_d;
    for (int64_t c = q; c < C4; c += kRowThreads) {
      const float4 x = x4[row + c], dy = dy4[row + c], w = w4[c];
      row_sums(sum_d.x, sum_dx.x, x.x, dy.x, w.x, m, s);
      row_sums(sum_d.y, sum_dx.y, x.y, dy.y, w.y, m, s);
      row_sums(sum_d.z, sum_dx.z, x.z, dy.z, w.z, m, s);
      row_sums(sum_d.w, sum_dx.w, x.w, dy.w, w.w, m, s);
    }
    const float mean_d = __fdiv_rn(row_total(sum_d, group), (float)C);
    const float mean_dx = __fdiv_rn(row_total(sum_dx, group), (float)C);
    float4* dx4 = reinterpret_cast<float4*>(dinp);
    for (int64_t c = q; c < C4; c += kRowThreads) {
      const float4 x = x4[row + c], dy = dy4[row + c], w = w4[c];
      float4 dx = dx4[row + c];
      dx.x = row_grad(dx.x, x.x, dy.x, w.x, m, s, mean_d, mean_dx);
      dx.y = row_grad(dx.y, x.y, dy.y, w.y, m, s, mean_d, mean_dx);
      dx.z = row_grad(dx.z, x.z, dy.z, w.z, m, s, mean_d, mean_dx);
      dx.w = row_grad(dx.w, x.w, dy.w, w.w, m, s, mean_d, mean_dx);
      dx4[row + c] = dx;
    }
  }
  __syncthreads();  // the chunk's statistics

  // the chunk's column partials of dweight and dbias
  const int64_t total = row_chunks(N) * C;
  for (int64_t c = threadIdx.x; c < C4; c += kThreads) {
    float4 dw = make_float4(0.0f, 0.0f, 0.0f, 0.0f), db = dw;
    chunk_column(x4, dy4, r0, rows, C4, c, [&](int i, const float4& x, const float4& dy) {
      const float m = chunk_mean[i], s = chunk_rstd[i];
      column_terms(dw.x, db.x, x.x, dy.x, m, s);
      column_terms(dw.y, db.y, x.y, dy.y, m, s);
      column_terms(dw.z, db.z, x.z, dy.z, m, s);
      column_terms(dw.w, db.w, x.w, dy.w, m, s);
    });
    reinterpret_cast<float4*>(partial + k * C)[c] = dw;
    reinterpret_cast<float4*>(partial + total + k * C)[c] = db;
  }
}

// RMSNorm's backward, fused the same way: dx += s (dn - xhat mean(dn xhat)), xhat = x s, one row
// sum; dweight's chunk partials dy x s.
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_chunks(float* __restrict__ dinp, float* __restrict__ partial, const float* __restrict__ dout,
                            const float* __restrict__ inp, const float* __restrict__ rstd,
                            const float* __restrict__ weight, int64_t N, int64_t C) {
  __shared__ float chunk_rstd[kRowChunk];
  const int64_t k = blockIdx.x, r0 = k * kRowChunk, C4 = C / 4;
  const int rows = (int)(N - r0 < kRowChunk ? N - r0 : kRowChunk);
  const float4* x4 = reinterpret_cast<const float4*>(inp);
  const float4* dy4 = reinterpret_cast<const float4*>(dout);
  const float4* w4 = reinterpret_cast<const float4*>(weight);

  const int i = threadIdx.x / kRowThreads, q = threadIdx.x % kRowThreads;
  if (i < rows) {  // a row's 4 threads are consecutive lanes: they skip together
    const unsigned group = 0xfu << (threadIdx.x & 28);
    const int64_t row = (r0 + i) * C4;
    const float s = rstd[r0 + i];
    if (q == 0) chunk_rstd[i] = s;
    const auto term = [](float dy, float w, float x) { return __fmul_rn(__fmul_rn(dy, w), x); };
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int64_t c = q; c < C4; c += kRowThreads) {
      const float4 x = x4[row + c], dy = dy4[row + c], w = w4[c];
      acc.x = __fadd_rn(acc.x, term(dy.x, w.x, x.x));
      acc.y = __fadd_rn(acc.y, term(dy.y, w.y, x.y));
      acc.z = __fadd_rn(acc.z, term(dy.z, w.z, x.z));
      acc.w = __fadd_rn(acc.w, term(dy.w, w.w, x.w));
    }
    const float mean_dx = __fdiv_rn(__fmul_rn(row_total(acc, group), s), (float)C);
    const auto grad = [&](float dx, float x, float dy, float w) {
      return __fadd_rn(dx, __fmul_rn(s, __fsub_rn(__fmul_rn(dy, w), __fmul_rn(__fmul_rn(x, s), mean_dx))));
    };
    float4* dx4 = reinterpret_cast<float4*>(dinp);
    for (int64_t c = q; c < C4; c += kRowThreads) {
      const float4 x = x4[row + c], dy = dy4[row + c], w = w4[c];
      float4 dx = dx4[row + c];
      dx.x = grad(dx.x, x.x, dy.x, w.x);
      dx.y = grad(dx.y, x.y, dy.y, w.y);
      dx.z = grad(dx.z, x.z, dy.z, w.z);
      dx.w = grad(dx.w, x.w, dy.w, w.w);
      dx4[row + c] = dx;
    }
  }
  __syncthreads();  // the chunk's statistics

  // the chunk's column partials of dweight
  for (int64_t c = threadIdx.x; c < C4; c += kThreads) {
    float4 dw = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    chunk_column(x4, dy4, r0, rows, C4, c, [&](int i, const float4& x, const float4& dy) {
      const float s = chunk_rstd[i];
      dw.x = __fadd_rn(dw.x, __fmul_rn(__fmul_rn(dy.x, x.x), s));
      dw.y = __fadd_rn(dw.y, __fmul_rn(__fmul_rn(dy.y, x.y), s));
      dw.z = __fadd_rn(dw.z, __fmul_rn(__fmul_rn(dy.z, x.z), s));
      dw.w = __fadd_rn(dw.w, __fmul_rn(__fmul_rn(dy.w, x.w), s));
    });
    reinterpret_cast<float4*>(partial + k * C)[c] = dw;
  }
}

// ---------------------------------------------------------------- elementwise

constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

// kGeluScale (x + kGeluCubic x x x)
__device__ __forceinline__ float gelu_arg(float x) {
  return __fmul_rn(kGeluScale, __fadd_rn(x, __fmul_rn(__fmul_rn(__fmul_rn(kGeluCubic, x), x), x)));
}

__global__ void __launch_bounds__(kThreads) gelu_forward_kernel(float* __restrict__ out,
                                                                __nv_bfloat16* __restrict__ out_bf16,
                                                                const float* __restrict__ inp, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float x = inp[i];
    store(out, out_bf16, i, __fmul_rn(__fmul_rn(0.5f, x), __fadd_rn(1.0f, tanh_f32(gelu_arg(x)))));
  }
}

// d gelu(x) / dx, times dy
__device__ __forceinline__ float gelu_backward_at(float x, float dy) {
  const float th = tanh_f32(gelu_arg(x));
  const float du = __fmul_rn(kGeluScale, __fadd_rn(1.0f, __fmul_rn(__fmul_rn(__fmul_rn(3.0f, kGeluCubic), x), x)));
  // 0.5 (1 + th) + 0.5 x (1 - th th) du
  const float grad = __fadd_rn(__fmul_rn(0.5f, __fadd_rn(1.0f, th)),
                               __fmul_rn(__fmul_rn(__fmul_rn(0.5f, x), __fsub_rn(1.0f, __fmul_rn(th, th))), du));
  return __fmul_rn(grad, dy);
}

// The up layer's dbias over dinp = gelu'(inp) dout, made on the way: its bf16 copy always, its
// fp32 values only when asked (dinp not null).
struct GeluBiasTerms {
  static constexpr int kOut = 1;
  struct Vals { float x, dy; };
  const float* dout;
  const float* inp;
  float* dinp;                // or null
  __nv_bfloat16* dinp_bf16;
  int64_t C;
  __device__ __forceinline__ Vals load(int64_t r, int64_t c) const { return {inp[r * C + c], dout[r * C + c]}; }
  __device__ __forceinline__ void add(float* acc, const Vals& v, int64_t r, int64_t c) const {
    const int64_t i = r * C + c;
    const float x = gelu_backward_at(v.x, v.dy);
    acc[0] = __fadd_rn(acc[0], x);
    if (dinp) dinp[i] = x;
    dinp_bf16[i] = __float2bfloat16_rn(x);
  }
};

__global__ void __launch_bounds__(kThreads) swiglu_forward_kernel(float* __restrict__ out,
                                                                  __nv_bfloat16* __restrict__ out_bf16,
                                                                  const float* __restrict__ inp, int64_t N, int64_t H) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N * H; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / H, j = i % H;
    const float g = inp[r * 2 * H + j], up = inp[r * 2 * H + H + j];
    store(out, out_bf16, i, __fmul_rn(__fmul_rn(g, sigmoid_f32(g)), up));
  }
}

__global__ void __launch_bounds__(kThreads) swiglu_backward_kernel(float* __restrict__ dinp,
                                                                   __nv_bfloat16* __restrict__ dinp_bf16,
                                                                   const float* __restrict__ dout,
                                                                   const float* __restrict__ inp, int64_t N, int64_t H) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N * H; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / H, j = i % H;
    const float g = inp[r * 2 * H + j], up = inp[r * 2 * H + H + j], dy = dout[i];
    const float sg = sigmoid_f32(g);
    // silu'(g) = sg (1 + g (1 - sg))
    store(dinp, dinp_bf16, r * 2 * H + j,
          __fmul_rn(__fmul_rn(__fmul_rn(dy, up), sg), __fadd_rn(1.0f, __fmul_rn(g, __fsub_rn(1.0f, sg)))));
    store(dinp, dinp_bf16, r * 2 * H + H + j, __fmul_rn(dy, __fmul_rn(g, sg)));
  }
}

__global__ void __launch_bounds__(kThreads) residual_bias_kernel(float* out, const float* res,
                                                                 const float* __restrict__ bias, int64_t N, int64_t C) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N * C; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = bias ? res[i] + bias[i % C] : res[i];
}

__global__ void __launch_bounds__(kThreads) to_bf16_kernel(__nv_bfloat16* __restrict__ dst,
                                                           const float* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

// Rotates q and k of every head by +angle (sign 1) or -angle (sign -1): one thread per pair.
__global__ void __launch_bounds__(kThreads) rope_kernel(float* __restrict__ qkv, const float* __restrict__ cos_t,
                                                        const float* __restrict__ sin_t, int64_t B, int64_t T,
                                                        int64_t C, int64_t NH, float sign) {
  const int64_t HS = C / NH, half = HS / 2, n = B * T * 2 * NH * half;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = idx % half, h = idx / half % NH, part = idx / (half * NH) % 2, bt = idx / (half * NH * 2);
    float* x = qkv + bt * 3 * C + part * C + h * HS;
    const float cs = cos_t[bt % T * half + i], s = sign * sin_t[bt % T * half + i];
    const float x1 = x[i], x2 = x[i + half];
    x[i] = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, s));
    x[i + half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, s));
  }
}

// ---------------------------------------------------------------- embeddings

__global__ void __launch_bounds__(kThreads) embedding_forward_kernel(float* __restrict__ out,
                                                                     const int32_t* __restrict__ tokens,
                                                                     const float* __restrict__ wte,
                                                                     const float* __restrict__ wpe, int64_t B,
                                                                     int64_t T, int64_t C) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < B * T * C; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t bt = i / C, c = i % C;
    const float e = wte[(int64_t)tokens[bt] * C + c];
    out[i] = wpe ? e + wpe[bt % T * C + c] : e;
  }
}

// One block per distinct token u: dwte[distinct[u]] += dout's rows at positions[offsets[u]..offsets[u + 1]), in order.
__global__ void __launch_bounds__(kThreads) embedding_backward_tokens(float* __restrict__ dwte,
                                                                      const float* __restrict__ dout,
                                                                      const int32_t* __restrict__ positions,
                                                                      const int32_t* __restrict__ distinct,
                                                                      const int32_t* __restrict__ offsets, int64_t C) {
  const int64_t u = blockIdx.x;
  float* g = dwte + (int64_t)distinct[u] * C;
  const int32_t s0 = offsets[u], s1 = offsets[u + 1];
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = g[c];
    for (int32_t s = s0; s < s1; s++) acc += dout[(int64_t)positions[s] * C + c];
    g[c] = acc;
  }
}

// dwpe[t, c] += dout[b, t, c] for b in order
__global__ void __launch_bounds__(kThreads) embedding_backward_positions(float* __restrict__ dwpe,
                                                                         const float* __restrict__ dout, int64_t B,
                                                                         int64_t T, int64_t C) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < T * C; i += (int64_t)gridDim.x * blockDim.x) {
    float acc = dwpe[i];
    for (int64_t b = 0; b < B; b++) acc += dout[b * T * C + i];
    dwpe[i] = acc;
  }
}

// ---------------------------------------------------------------- the loss: one block per row

constexpr int kLossThreads = 1024;

// The block's maximum, in every thread (exact in any order; NaN-free inputs).
__device__ __forceinline__ float block_max(float x) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  x = partial[0];
  for (int w = 1; w < (int)(blockDim.x >> 5); w++) x = fmaxf(x, partial[w]);
  __syncthreads();  // partial may be reused by a second call
  return x;
}

// block_sum (reduce.cuh: a fixed tree), in every thread. `total` is rewritten by the next call
// only after that call's block_sum has synchronised, so every thread has read it by then.
__device__ __forceinline__ float block_total(float x) {
  __shared__ float total;
  x = block_sum(x);
  if (threadIdx.x == 0) total = x;
  __syncthreads();
  return total;
}

// The CPU's log-sum-exp: shift + log(sum), in double, rounded to float.
__device__ __forceinline__ float lse_of(float shift, float sum) { return (float)((double)shift + log((double)sum)); }

__global__ void __launch_bounds__(kLossThreads)
    loss_rows_kernel(float* dlogits, __nv_bfloat16* __restrict__ dlogits_bf16, float* __restrict__ ce,
                     float* __restrict__ kl, const float* logits, const int32_t* __restrict__ targets,
                     const float* __restrict__ teacher, float alpha, float tau, float inv_tau, float dscale, int64_t V,
                     int64_t ld) {
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const float* s = logits + row * ld;  // s and d may be one buffer: no __restrict__
  float* d = dlogits ? dlogits + row * ld : nullptr;
  __nv_bfloat16* dbf = dlogits_bf16 ? dlogits_bf16 + row * ld : nullptr;
  const float* t = teacher ? teacher + row * ld : nullptr;
  if (dbf)
    for (int64_t j = V + threadIdx.x; j < ld; j += blockDim.x) dbf[j] = __float2bfloat16_rn(0.0f);
  if (target < 0) {
    if (d)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) d[j] = 0.0f;
    if (dbf)
      for (int64_t j = threadIdx.x; j < V; j += blockDim.x) dbf[j] = __float2bfloat16_rn(0.0f);
    if (threadIdx.x == 0) {
      if (ce) ce[row] = 0.0f;
      if (kl) kl[row] = 0.0f;
    }
    return;
  }
  const float s_target = s[target];  // read before the block's first barrier: d may overwrite it later

  float ms = -INFINITY, mt = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    ms = fmaxf(ms, s[j]);
    if (t) mt = fmaxf(mt, t[j]);
  }
  const float m = block_max(ms);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) sum = __fadd_rn(sum, exp_f32(__fsub_rn(s[j], m)));
  const float lse = lse_of(m, block_total(sum));

  float lse_p = 0.0f, lse_q = 0.0f, kl_row = 0.0f;
  if (t) {
    const float mt_tau = __fmul_rn(block_max(mt), inv_tau), ms_tau = __fmul_rn(m, inv_tau);
    float sp = 0.0f, sq = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      sp = __fadd_rn(sp, exp_f32(__fsub_rn(__fmul_rn(t[j], inv_tau), mt_tau)));
      sq = __fadd_rn(sq, exp_f32(__fsub_rn(__fmul_rn(s[j], inv_tau), ms_tau)));
    }
    lse_p = lse_of(mt_tau, block_total(sp));
    lse_q = lse_of(ms_tau, block_total(sq));
    // KL = sum_j p_j (t_j / tau - s_j / tau) - lse_p + lse_q
    float acc = 0.0f;
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const float tt = __fmul_rn(t[j], inv_tau);
      acc = __fadd_rn(acc, __fmul_rn(exp_f32(__fsub_rn(tt, lse_p)), __fsub_rn(tt, __fmul_rn(s[j], inv_tau))));
    }
    kl_row = __fadd_rn(__fsub_rn(block_total(acc), lse_p), lse_q);
  }
  if (threadIdx.x == 0) {
    if (ce) ce[row] = lse - s_target;
    if (kl) kl[row] = kl_row;
  }

  if (d || dbf) {  // every read of s above is behind a barrier every thread has passed
    const float ce_w = __fmul_rn(dscale, t ? __fsub_rn(1.0f, alpha) : 1.0f);
    const float kd_w = __fmul_rn(__fmul_rn(dscale, alpha), tau);
    for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
      const float sj = s[j];
      float g = __fmul_rn(ce_w, exp_f32(__fsub_rn(sj, lse)));
      if (t)
        g = __fadd_rn(g, __fmul_rn(kd_w, __fsub_rn(exp_f32(__fsub_rn(__fmul_rn(sj, inv_tau), lse_q)),
                                                   exp_f32(__fsub_rn(__fmul_rn(t[j], inv_tau), lse_p)))));
      g = j == target ? __fsub_rn(g, ce_w) : g;
      if (d) d[j] = g;
      if (dbf) dbf[j] = __float2bfloat16_rn(g);
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- norms

size_t norm_backward_scratch_floats(int64_t N, int64_t C) { return (size_t)(2 * row_chunks(N) * C); }

void layernorm_forward(float* out, __nv_bfloat16* out_bf16, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, float eps, int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  layernorm_forward_kernel<<<grid_for(N, kRowsPerBlock), kThreads, 0, stream>>>(out, out_bf16, mean, rstd, inp, weight,
                                                                                bias, eps, N, C);
  SIEVE_LAUNCHED();
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* mean, const float* rstd, const float* weight, float* scratch, int64_t N, int64_t C,
                        cudaStream_t stream) {
  if (N == 0) return;
  if (C > 0 && C % 4 == 0 && aligned(dinp, 16) && aligned(dout, 16) && aligned(inp, 16) && aligned(weight, 16) &&
      aligned(scratch, 16)) {
    const int64_t chunks = row_chunks(N);
    layernorm_backward_chunks<<<(unsigned)chunks, kThreads, 0, stream>>>(dinp, scratch, dout, inp, mean, rstd, weight,
                                                                         N, C);
    SIEVE_LAUNCHED();
    column_finish<<<grid_for(C, kThreads), kThreads, 0, stream>>>(dweight, dbias, scratch, chunks, C);
    SIEVE_LAUNCHED();
    return;
  }
  layernorm_backward_rows<<<grid_for(N, kRowsPerBlock), kThreads, 0, stream>>>(dinp, dout, inp, mean, rstd, weight, N,
                                                                               C);
  SIEVE_LAUNCHED();
  column_sums(dweight, dbias, LayerNormTerms{dout, inp, mean, rstd, C}, scratch, N, C, stream);
}

void rmsnorm_forward(float* out, __nv_bfloat16* out_bf16, float* rstd, const float* inp, const float* weight, float eps,
                     int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  rmsnorm_forward_kernel<<<grid_for(N, kRowsPerBlock), kThreads, 0, stream>>>(out, out_bf16, rstd, inp, weight, eps, N,
                                                                              C);
  SIEVE_LAUNCHED();
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* rstd,
                      const float* weight, float* scratch, int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  if (C > 0 && C % 4 == 0 && aligned(dinp, 16) && aligned(dout, 16) && aligned(inp, 16) && aligned(weight, 16) &&
      aligned(scratch, 16)) {
    const int64_t chunks = row_chunks(N);
    rmsnorm_backward_chunks<<<(unsigned)chunks, kThreads, 0, stream>>>(dinp, scratch, dout, inp, rstd, weight, N, C);
    SIEVE_LAUNCHED();
    column_finish<<<grid_for(C, kThreads), kThreads, 0, stream>>>(dweight, nullptr, scratch, chunks, C);
    SIEVE_LAUNCHED();
    return;
  }
  rmsnorm_backward_rows<<<grid_for(N, kRowsPerBlock), kThreads, 0, stream>>>(dinp, dout, inp, rstd, weight, N, C);
  SIEVE_LAUNCHED();
  column_sums(dweight, nullptr, RmsNormTerms{dout, inp, rstd, C}, scratch, N, C, stream);
}

// ---------------------------------------------------------------- activations

void gelu_forward(float* out, __nv_bfloat16* out_bf16, const float* inp, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, out_bf16, inp, n);
  SIEVE_LAUNCHED();
}

void swiglu_forward(float* out, __nv_bfloat16* out_bf16, const float* inp, int64_t N, int64_t H, cudaStream_t stream) {
  if (N * H == 0) return;
  swiglu_forward_kernel<<<grid_for(N * H, kThreads), kThreads, 0, stream>>>(out, out_bf16, inp, N, H);
  SIEVE_LAUNCHED();
}

void swiglu_backward(float* dinp, __nv_bfloat16* dinp_bf16, const float* dout, const float* inp, int64_t N, int64_t H,
                     cudaStream_t stream) {
  if (N * H == 0) return;
  swiglu_backward_kernel<<<grid_for(N * H, kThreads), kThreads, 0, stream>>>(dinp, dinp_bf16, dout, inp, N, H);
  SIEVE_LAUNCHED();
}

// ---------------------------------------------------------------- linear layers' elementwise parts

void residual_bias_forward(float* out, const float* res, const float* bias, int64_t N, int64_t C, cudaStream_t stream) {
  if (N * C == 0 || (out == res && !bias)) return;
  residual_bias_kernel<<<grid_for(N * C, kThreads), kThreads, 0, stream>>>(out, res, bias, N, C);
  SIEVE_LAUNCHED();
}

size_t bias_backward_scratch_floats(int64_t N, int64_t OC) { return (size_t)(row_chunks(N) * OC); }

void gelu_backward_bias(float* dbias, float* dinp, __nv_bfloat16* dinp_bf16, const float* dout, const float* inp,
                        float* scratch, int64_t N, int64_t H, cudaStream_t stream) {
  column_sums(dbias, nullptr, GeluBiasTerms{dout, inp, dinp, dinp_bf16, H}, scratch, N, H, stream);
}

void bias_backward(float* dbias, __nv_bfloat16* dout_bf16, const float* dout, float* scratch, int64_t N, int64_t OC,
                   cudaStream_t stream) {
  column_sums(dbias, nullptr, ColumnTerms{dout, dout_bf16, OC}, scratch, N, OC, stream);
}

// ---------------------------------------------------------------- embeddings

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B, int64_t T,
                       int64_t C, cudaStream_t stream) {
  if (B * T * C == 0) return;
  embedding_forward_kernel<<<grid_for(B * T * C, kThreads), kThreads, 0, stream>>>(out, tokens, wte, wpe, B, T, C);
  SIEVE_LAUNCHED();
}

void EmbeddingPlan::build(const int32_t* host_tokens, int64_t B, int64_t T, cudaStream_t stream) {
  const int64_t n = B * T;
  B_ = B, T_ = T;
  // a stable counting sort by token id: positions grouped by token, increasing within each
  int32_t vmax = -1;
  for (int64_t i = 0; i < n; i++) vmax = std::max(vmax, host_tokens[i]);
  count_.assign((size_t)vmax + 1, 0);
  for (int64_t i = 0; i < n; i++) count_[host_tokens[i]]++;
  int64_t U = 0;
  for (int32_t c : count_) U += c > 0;
  host_.resize((size_t)(2 * n + 2 * U + 1));
  int32_t* tokens = host_.data();
  int32_t* positions = tokens + n;
  int32_t* distinct = positions + n;
  int32_t* offsets = distinct + U;
  if (n) std::memcpy(tokens, host_tokens, sizeof(int32_t) * (size_t)n);
  int32_t u = 0, at = 0;
  for (int32_t v = 0; v <= vmax; v++) {
    if (!count_[v]) continue;
    distinct[u] = v;
    offsets[u++] = at;
    const int32_t k = count_[v];
    count_[v] = at;  // from here on: token v's fill cursor
    at += k;
  }
  offsets[U] = (int32_t)n;
  for (int64_t i = 0; i < n; i++) positions[count_[tokens[i]]++] = (int32_t)i;
  distinct_ = U;
  if (dev_.size() < 4 * n + 1) dev_ = DeviceBuffer<int32_t>(4 * n + 1);
  // pageable source: the call returns once host_ is staged, so the next build may rewrite it
  SIEVE_CUDA(cudaMemcpyAsync(dev_.get(), host_.data(), sizeof(int32_t) * host_.size(), cudaMemcpyHostToDevice, stream));
}

void EmbeddingPlan::backward(float* dwte, float* dwpe, const float* dout, int64_t C, cudaStream_t stream) const {
  if (B_ * T_ * C == 0) return;
  const int32_t* positions = dev_.get() + B_ * T_;
  const int32_t* distinct = positions + B_ * T_;
  const int threads = (int)std::min<int64_t>(kThreads, (C + 31) / 32 * 32);
  embedding_backward_tokens<<<(unsigned)distinct_, threads, 0, stream>>>(dwte, dout, positions, distinct,
                                                                         distinct + distinct_, C);
  SIEVE_LAUNCHED();
  if (dwpe) {
    embedding_backward_positions<<<grid_for(T_ * C, kThreads), kThreads, 0, stream>>>(dwpe, dout, B_, T_, C);
    SIEVE_LAUNCHED();
  }
}

// ---------------------------------------------------------------- RoPE

void rope_forward(float* qkv, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t C, int64_t NH,
                  cudaStream_t stream) {
  if (B * T * C == 0) return;
  rope_kernel<<<grid_for(B * T * C, kThreads), kThreads, 0, stream>>>(qkv, cos_t, sin_t, B, T, C, NH, 1.0f);
  SIEVE_LAUNCHED();
}

void rope_backward(float* dqkv, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t C, int64_t NH,
                   cudaStream_t stream) {
  if (B * T * C == 0) return;
  // the rotation is orthogonal: its transpose is the rotation by -angle
  rope_kernel<<<grid_for(B * T * C, kThreads), kThreads, 0, stream>>>(dqkv, cos_t, sin_t, B, T, C, NH, -1.0f);
  SIEVE_LAUNCHED();
}

// ---------------------------------------------------------------- loss, bf16

void loss_rows(float* dlogits, __nv_bfloat16* dlogits_bf16, float* ce, float* kl, const float* logits,
               const int32_t* targets, const float* teacher, float alpha, float tau, float dscale, int64_t rows,
               int64_t V, int64_t ld, cudaStream_t stream) {
  SIEVE_CHECK(ld >= V, "loss_rows: ld %lld < V %lld", (long long)ld, (long long)V);
  if (rows == 0) return;
  // a fixed block size per V: the reduction tree, and so the bits, depend on V alone
  const int threads = V >= 8192 ? kLossThreads : 256;
  loss_rows_kernel<<<(unsigned)rows, threads, 0, stream>>>(dlogits, dlogits_bf16, ce, kl, logits, targets, teacher,
                                                           alpha, tau, 1.0f / tau, dscale, V, ld);
  SIEVE_LAUNCHED();
}

void to_bf16(__nv_bfloat16* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(dst, src, n);
  SIEVE_LAUNCHED();
}

}  // namespace sieve::cuda
