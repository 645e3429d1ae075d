// model.cu — the GPU model: its buffers and copies, the seams' setup, the training forward +
// backward, the optimizer step, inference, the 2:4 members and PQI. It follows cpu/model.cc
// pass for pass (read block_forward / block_backward there and here side by side); what
// differs is where the numbers live and that every GEMM multiplies bf16 copies.
//
// Promises: the same parameters and inputs give the same bits run after run (no float
// atomics anywhere: every sum over tokens runs in an order fixed by the sizes); gradients
// accumulate (+=) until zero_grad; every CUDA call is checked (common.cuh).
#include "model.cuh"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/rng.h"
#include "core/rope.h"
#include "core/seams.h"
#include "reduce.cuh"
#include "sparsity.cuh"
#include "update_rule.cuh"

namespace sieve::cuda {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

__global__ void fill_kernel(float* x, float value, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = value;
}

void fill(float* x, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fill_kernel<<<grid_for(n, 256), 256, 0, stream>>>(x, value, n);
  SIEVE_LAUNCHED();
}

// out (N, OC) += bias, broadcast over rows (a linear layer's bias after its GEMM): x threads
// cover the columns, each keeping its bias in a register, y blocks stride the rows (no
// per-element index division, which made this kernel twice as slow as its memory traffic).
__global__ void add_bias_kernel(float* out, const float* bias, int64_t N, int64_t OC) {
  const int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (c >= OC) return;
  const float b = bias[c];
  for (int64_t r = blockIdx.y; r < N; r += gridDim.y) out[r * OC + c] = __fadd_rn(out[r * OC + c], b);
}

void add_bias(float* out, const float* bias, int64_t N, int64_t OC, cudaStream_t stream) {
  if (N == 0 || OC == 0) return;
  const dim3 grid((unsigned)((OC + 255) / 256), (unsigned)std::min<int64_t>(N, 2048));
  add_bias_kernel<<<grid, 256, 0, stream>>>(out, bias, N, OC);
  SIEVE_LAUNCHED();
}

// x += y
__global__ void add_kernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    x[i] = __fadd_rn(x[i], y[i]);
}

// g *= s: the gradient clip, as the CPU rounds it.
__global__ void scale_kernel(float* g, float s, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    g[i] = __fmul_rn(g[i], s);
}

// p = w0 + s d (PQI's interpolation point), each operation rounded on its own as on the CPU.
__global__ void axpy_point_kernel(float* p, const float* w0, const float* d, float s, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    p[i] = __fadd_rn(w0[i], __fmul_rn(s, d[i]));
}

// pqi += wk d g, in double.
__global__ void pqi_accumulate_kernel(double* pqi, const float* d, const float* g, double wk, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    pqi[i] += wk * (double)d[i] * (double)g[i];
}

// Sums of |w| where the mask is 0 and of |w| over one block's share, in double; the block
// sums then add up in block order on the host (mask_stats).
constexpr int kStatsThreads = 256, kStatsBlocks = 256;
__global__ void abs_sums_kernel(double* partial /* (2, blocks) */, const float* w, const float* mask, int64_t n) {
  double pruned = 0.0, total = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const double a = fabs((double)w[i]);
    total += a;
    if (mask && mask[i] == 0.0f) pruned += a;
  }
  pruned = block_sum(pruned);
  total = block_sum(total);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = pruned;
    partial[gridDim.x + blockIdx.x] = total;
  }
}

void check_cancel(const CudaModel& m) {
  if (m.model.cancel.load(std::memory_order_relaxed)) fail(SIEVE_E_CANCELLED, "cancelled");
}

float* param(CudaModel& m, int64_t idx) { return idx < 0 ? nullptr : m.params.get() + m.net.tensors[idx].offset; }
float* grad(CudaModel& m, int64_t idx) { return idx < 0 ? nullptr : m.grads.get() + m.net.tensors[idx].offset; }
const __nv_bfloat16* weight_bf(const CudaModel& m, int64_t idx) {
  return m.weights_bf.get() + m.net.tensors[idx].offset;
}

using LinearMember = Linear LayerLinears::*;
constexpr LinearMember kLinears[] = {&LayerLinears::qkv, &LayerLinears::out, &LayerLinears::up, &LayerLinears::down};

// The LM head's padded vocabulary: V rounded up to 64. cuBLASLt runs the head's GEMMs with an odd
// V (GPT-2's 50257) on a slow generic kernel even with aligned rows (measured on an H100: the
// logits 4.3 ms and their input gradient 3.2 ms per 5341-row chunk, 100-130 TFLOP/s, a third
// of a GPT-2 small step), so they multiply head_bf's zero-padded rows and logits rows this far
// apart; the padding columns of the logits are exact zeros and never enter the loss.
int64_t head_ld(int64_t V) { return (V + 63) / 64 * 64; }

// A weight's scale-adapter segments SG (SCALE's A is (OC, SG)).
int64_t scale_segments(const CudaModel& m, const TensorEntry& t) { return m.net.tensors[t.scale].shape[1]; }

// What a linear layer's W~ is known to be (Mask24), and so which of its products may run on 2:4
// weights: every tensor must be (the least of them decides), and the shapes and the weight's
// address must be what cuSPARSELt takes (multiples of 16, 16-byte aligned).
Mask24 layer_mask24(const CudaModel& m, const Linear& lin, int64_t N) {
  if (N % 16 || lin.OC % 16 || lin.IC % 16 || m.net.tensors[lin.first].offset % 8) return kNot24;
  Mask24 least = kTransposable;
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const int32_t kind = m.net.tensors[idx].transform.kind;
    // S(W) is 2:4 along IC by construction (the two smallest of every 4 go to zero), not along OC
    const Mask24 t = kind == SIEVE_TRANSFORM_SSTE   ? kAlongIC
                     : kind == SIEVE_TRANSFORM_MASK ? (Mask24)m.mask24[idx]
                                                    : kNot24;
    least = std::min(least, t);
  }
  return least;
}

// Whether any linear weight is under a transform that can make it 2:4 (sizes sparse_bf).
bool any_sparse_transform(const CudaModel& m) {
  for (const LayerLinears& ll : m.net.layers)
    for (auto member : kLinears)
      for (int64_t i = 0; i < (ll.*member).count; i++) {
        const int32_t kind = m.net.tensors[(ll.*member).first + i].transform.kind;
        if (kind == SIEVE_TRANSFORM_SSTE || kind == SIEVE_TRANSFORM_MASK) return true;
      }
  return false;
}

// The layer's cuSPARSELt GEMMs, made on first use (and again if its masks became, or stopped
// being, transposable: a transposable layer keeps a second compressed copy).
SparseLinear& sparse_layer(CudaModel& m, const Linear& lin, bool transposable) {
  if (!m.sparse_lt) m.sparse_lt = std::make_unique<SparseLt>();
  std::unique_ptr<SparseLinear>& layer = m.sparse_layers[lin.first];
  if (!layer || layer->transposable() != transposable)
    layer = std::make_unique<SparseLinear>(*m.sparse_lt, lin.OC, lin.IC, transposable, SparseAlgo::search,
                                           m.compression);
  return *layer;
}

// Queues the compression of every linear layer whose W~ multiplies on 2:4 for N rows on the side
// stream, in the order the forward reads them, once weights_bf is written: the first layers'
// compressions are waited for, the rest run under the forward of the layers before them (each
// product waits for its own, sparse_gemm.cuh).
void compress_ahead(CudaModel& m, int64_t N) {
  bool any = false;
  for (const LayerLinears& ll : m.net.layers)
    for (auto member : kLinears) {
      const Linear& lin = ll.*member;
      const Mask24 sparse = layer_mask24(m, lin, N);
      if (sparse == kNot24) continue;
      if (!any) SIEVE_CUDA(cudaStreamWaitEvent(m.compress_stream, m.weights_ready, 0));
      any = true;
      sparse_layer(m, lin, sparse == kTransposable)
          .prepare(weight_bf(m, lin.first), m.weights_version, m.compress_stream);
    }
  if (any) SIEVE_CUDA(cudaEventRecord(m.compressions_done, m.compress_stream));
}

// What every GEMM multiplies, in bf16: W, or W~ = M (.) W (MASK), beta S(W) (SSTE) or A (.) W
// (SCALE), written straight from the fp32 parameters by the fused kernels (no fp32 W~ is kept);
// then the 2:4 ones compressed ahead for a forward of N rows.
void prepare_weights(CudaModel& m, int64_t N) {
  // a compression queued by the last call may not have been read by any product: it still reads
  // weights_bf, which is about to change
  SIEVE_CUDA(cudaStreamWaitEvent(m.stream, m.compressions_done, 0));
  to_bf16(m.weights_bf.get(), m.params.get(), m.net.num_params, m.stream);
  for (const LayerLinears& ll : m.net.layers)
    for (auto member : kLinears) {
      const Linear& lin = ll.*member;
      for (int64_t i = 0; i < lin.count; i++) {
        const TensorEntry& t = m.net.tensors[lin.first + i];
        __nv_bfloat16* out = m.weights_bf.get() + t.offset;
        const float* w = m.params.get() + t.offset;
        if (t.transform.kind == SIEVE_TRANSFORM_MASK)
          masked_weight(nullptr, out, w, m.masks.get() + t.offset, t.size, m.stream);
        else if (t.transform.kind == SIEVE_TRANSFORM_SSTE)
          sste_threshold(nullptr, out, nullptr, w, t.transform.params[0], t.size, m.stream);
        else if (t.transform.kind == SIEVE_TRANSFORM_SCALE)
          weight_scale(nullptr, out, w, param(m, t.scale), t.shape[0], t.shape[1], scale_segments(m, t), m.stream);
      }
    }
  const int64_t head = m.net.head;  // (V, C), then head_bf's zero rows stay as they were made
  SIEVE_CUDA(cudaMemcpyAsync(m.head_bf.get(), weight_bf(m, head), m.net.tensors[head].size * sizeof(__nv_bfloat16),
                             cudaMemcpyDeviceToDevice, m.stream));
  m.weights_version++;
  SIEVE_CUDA(cudaEventRecord(m.weights_ready, m.stream));
  compress_ahead(m, N);
}

// out (N, cols) = y + bias, or (res + bias) + y with a residual (bias, res: null for none): a 2:4
// GEMM's bf16 result into the fp32 activations, in one pass.
__device__ __forceinline__ float widened(float v, float b, const float* res) { return res ? (*res + b) + v : v + b; }

__global__ void widen_kernel(float* out, const __nv_bfloat16* y, const float* bias, const float* res, int64_t N,
                             int64_t cols) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < N * cols; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = widened(__bfloat162float(y[i]), bias ? bias[i % cols] : 0.0f, res ? res + i : nullptr);
}

// The same, 4 columns a thread (cols % 4 == 0, out/res/bias 16-byte and y 8-byte aligned; n4 below
// 2^31, so the 32-bit index cannot wrap past it): the bandwidth-bound pass it is, where one element
// a thread with a 64-bit modulo each was not.
__global__ void widen4_kernel(float4* out, const uint2* y, const float4* bias, const float4* res, uint32_t n4,
                              uint32_t cols4) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += gridDim.x * blockDim.x) {
    const uint2 packed = y[i];
    const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.x));
    const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&packed.y));
    const float4 b = bias ? bias[i % cols4] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 r;
    if (res) r = res[i];
    const float4 v = make_float4(widened(lo.x, b.x, res ? &r.x : nullptr), widened(lo.y, b.y, res ? &r.y : nullptr),
                                 widened(hi.x, b.z, res ? &r.z : nullptr), widened(hi.y, b.w, res ? &r.w : nullptr));
    out[i] = v;
  }
}

void widen(float* out, const __nv_bfloat16* y, const float* bias, const float* res, int64_t N, int64_t cols,
           cudaStream_t stream) {
  const int64_t n4 = N * cols / 4;
  if (cols % 4 == 0 && n4 <= INT32_MAX && aligned(out, 16) && aligned(y, 8) && aligned(bias, 16) &&
      aligned(res, 16)) {
    widen4_kernel<<<grid_for(n4, 256), 256, 0, stream>>>(
        reinterpret_cast<float4*>(out), reinterpret_cast<const uint2*>(y), reinterpret_cast<const float4*>(bias),
        reinterpret_cast<const float4*>(res), (uint32_t)n4, (uint32_t)(cols / 4));
  } else {
    widen_kernel<<<grid_for(N * cols, 256), 256, 0, stream>>>(out, y, bias, res, N, cols);
  }
  SIEVE_LAUNCHED();
}

// Where the SLoRB weight idx's X P^T (N, r) sits in its block's slice xp.
__nv_bfloat16* slorb_xp(const CudaModel& m, __nv_bfloat16* xp, int64_t idx, int64_t N) {
  return xp + m.slorb.col[idx] * N;
}

// out[:, the weight's columns] += (inp P^T) S^T for each weight of the layer with SLoRB (METHODS
// 4.5), X P^T written in bf16 into the block's slice xp (the second product's operand, and the
// backward's).
void slorb_forward(CudaModel& m, const Linear& lin, float* out, const __nv_bfloat16* inp_bf, __nv_bfloat16* xp,
                   int64_t N) {
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    if (t.slorb_s < 0) continue;
    const int64_t OCt = t.shape[0], r = m.net.slorb_rank(t);
    __nv_bfloat16* x_p = slorb_xp(m, xp, idx, N);
    m.blas.gemm(false, true, N, r, lin.IC, 1.0f, inp_bf, lin.IC, weight_bf(m, t.slorb_p), lin.IC, 0.0f, x_p, r,
                m.stream);
    m.blas.gemm(false, true, N, OCt, r, 1.0f, x_p, r, weight_bf(m, t.slorb_s), r, 1.0f, out + i * OCt, lin.OC,
                m.stream);
    m.timing.gemm_flops += 2.0 * (double)N * (double)r * (double)(lin.IC + OCt);
  }
}

// The SLoRB branch's backward, Z[:, cols] += XP S^T with XP = X P^T: dS += dZ^T XP, dXP = dZ S,
// dP += dXP^T X, dinp += dXP P, from dout's bf16 copy (the dense dZ, as on the CPU).
void slorb_backward(CudaModel& m, const Linear& lin, float* dinp, const __nv_bfloat16* dout_bf,
                    const __nv_bfloat16* inp_bf, __nv_bfloat16* xp, int64_t N) {
  __nv_bfloat16* dxp = m.acts.slorb_dxp;
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    if (t.slorb_s < 0) continue;
    const int64_t OCt = t.shape[0], r = m.net.slorb_rank(t);
    const __nv_bfloat16* dz = dout_bf + i * OCt;
    const __nv_bfloat16* x_p = slorb_xp(m, xp, idx, N);
    m.blas.gemm(true, false, OCt, r, N, 1.0f, dz, lin.OC, x_p, r, 1.0f, grad(m, t.slorb_s), r, m.stream);
    m.blas.gemm(false, false, N, r, OCt, 1.0f, dz, lin.OC, weight_bf(m, t.slorb_s), r, 0.0f, dxp, r, m.stream);
    m.blas.gemm(true, false, r, lin.IC, N, 1.0f, dxp, r, inp_bf, lin.IC, 1.0f, grad(m, t.slorb_p), lin.IC, m.stream);
    m.blas.gemm(false, false, N, lin.IC, r, 1.0f, dxp, r, weight_bf(m, t.slorb_p), lin.IC, 1.0f, dinp, lin.IC,
                m.stream);
    m.timing.gemm_flops += 4.0 * (double)N * (double)r * (double)(lin.IC + OCt);
  }
}

// out (N, OC) = res + inp W~^T + bias (res: the residual, or null), from inp's bf16 copy, in one
// pass over out; through cuSPARSELt when W~ is known 2:4 (layer_mask24); then the SLoRB branch of
// its weights that have one (xp: the block's slice of their X P^T). inp, the fp32 input, is only
// for the linear tap (null when there is none).
void linear_forward(CudaModel& m, const Linear& lin, float* out, const float* res, const float* inp,
                    const __nv_bfloat16* inp_bf, int64_t N, __nv_bfloat16* xp) {
  if (m.linear_tap) m.linear_tap(lin, inp, N);
  const double flops = 2.0 * (double)N * (double)lin.OC * (double)lin.IC;
  m.timing.gemm_flops += flops;
  const float* bias = param(m, lin.bias);
  const Mask24 sparse = layer_mask24(m, lin, N);
  if (sparse != kNot24) {
    sparse_layer(m, lin, sparse == kTransposable)
        .forward(m.acts.sparse_bf, inp_bf, weight_bf(m, lin.first), m.weights_version, N, false, m.stream);
    widen(out, m.acts.sparse_bf, bias, res, N, lin.OC, m.stream);
    m.timing.sparse_gemm_flops += flops;
  } else if (!bias || Blas::bias_fits(bias)) {  // the residual and bias in cuBLASLt's epilogue
    m.blas.gemm_add(false, true, N, lin.OC, lin.IC, 1.0f, inp_bf, lin.IC, weight_bf(m, lin.first), lin.IC, bias, res,
                    out, lin.OC, m.stream);
  } else if (res) {  // a misaligned bias: out = res + bias, then the GEMM adds to it
    residual_bias_forward(out, res, bias, N, lin.OC, m.stream);
    m.blas.gemm(false, true, N, lin.OC, lin.IC, 1.0f, inp_bf, lin.IC, weight_bf(m, lin.first), lin.IC, 1.0f, out,
                lin.OC, m.stream);
  } else {  // a misaligned bias, added after the GEMM
    m.blas.gemm(false, true, N, lin.OC, lin.IC, 1.0f, inp_bf, lin.IC, weight_bf(m, lin.first), lin.IC, 0.0f, out,
                lin.OC, m.stream);
    add_bias(out, bias, N, lin.OC, m.stream);
  }
  slorb_forward(m, lin, out, inp_bf, xp, N);
}

// Rewrites the columns of MVUE weights in dout_bf, the bf16 copy of dout, with MVUE's estimate
// of them (2:4 along the N tokens), drawn from dout itself: the weight-gradient GEMM's dZ.
void mvue_dout(CudaModel& m, const Linear& lin, __nv_bfloat16* dout_bf, const float* dout, int64_t N) {
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    const int64_t c0 = i * t.shape[0];
    if (t.mvue)
      mvue24(dout_bf + c0, dout + c0, N, t.shape[0], lin.OC, lin.OC,
             mvue_key(t.mvue_seed, m.model.step, m.model.micro, idx), m.stream);
  }
}

bool has_scale(const CudaModel& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (m.net.tensors[lin.first + i].transform.kind == SIEVE_TRANSFORM_SCALE) return true;
  return false;
}

bool has_mvue(const CudaModel& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (m.net.tensors[lin.first + i].mvue) return true;
  return false;
}

// Whether the layer's weight gradient multiplies on 2:4 for N rows: every weight of it has MVUE on
// (so all of dZ is 2:4 along the tokens: one product for the layer), the shapes are what
// cuSPARSELt takes and SIEVE_CUDA_WGRAD24 wants it (model.cuh). Scaled weights keep the dense GEMM
// (SCALE's backward reads dW~ in fp32).
bool sparse_weight_grad(const CudaModel& m, const Linear& lin, int64_t N) {
  if (N % 16 || lin.OC % 16 || lin.IC % 16 || m.weight_grad24 == WeightGrad24::off) return false;
  if (m.weight_grad24 == WeightGrad24::automatic && std::min(lin.OC, lin.IC) < kWeightGrad24MinDim) return false;
  for (int64_t i = 0; i < lin.count; i++) {
    const TensorEntry& t = m.net.tensors[lin.first + i];
    if (!t.mvue || t.transform.kind == SIEVE_TRANSFORM_SCALE) return false;
  }
  return true;
}

SparseWeightGrad& sparse_wgrad(CudaModel& m, const Linear& lin) {
  if (!m.sparse_lt) m.sparse_lt = std::make_unique<SparseLt>();
  std::unique_ptr<SparseWeightGrad>& g = m.sparse_wgrads[lin.first];
  if (!g) g = std::make_unique<SparseWeightGrad>(*m.sparse_lt, lin.OC, lin.IC, SparseAlgo::search, m.compression);
  return *g;
}

// dinp = dout W~ (overwritten; through cuSPARSELt when W~ is transposable 2:4) plus the SLoRB
// branch's (xp: the block's slice of X P^T), dW~ = dout^T inp
// straight into dW for the straight-through transforms, through SCALE's backward (dW += A (.) dW~,
// dA += its segment sums of dW~ (.) W) for scaled weights; dbias += the column sums of dout, read
// once with the bf16 copy of dout the GEMMs multiply. With dout_ready, the caller has written that
// copy into grad_bf and added dbias already; dout (fp32) is then read only by MVUE, and may be null
// when the layer has none.
void linear_backward(CudaModel& m, const Linear& lin, float* dinp, const float* dout, const __nv_bfloat16* inp,
                     int64_t N, __nv_bfloat16* xp, bool dout_ready = false) {
  Activations& a = m.acts;
  __nv_bfloat16* dout_bf = a.grad_bf;
  if (!dout_ready) {
    if (lin.bias >= 0)
      bias_backward(grad(m, lin.bias), dout_bf, dout, a.reduce_scratch, N, lin.OC, m.stream);
    else
      to_bf16(dout_bf, dout, N * lin.OC, m.stream);
  }
  const double flops = 2.0 * (double)N * (double)lin.OC * (double)lin.IC;
  if (layer_mask24(m, lin, N) == kTransposable) {
    sparse_layer(m, lin, true)
        .backward_input(a.sparse_bf, dout_bf, weight_bf(m, lin.first), m.weights_version, N, false, m.stream);
    widen(dinp, a.sparse_bf, nullptr, nullptr, N, lin.IC, m.stream);
    m.timing.sparse_gemm_flops += flops;
  } else {
    m.blas.gemm(false, false, N, lin.IC, lin.OC, 1.0f, dout_bf, lin.OC, weight_bf(m, lin.first), lin.IC, 0.0f, dinp,
                lin.IC, m.stream);
  }
  slorb_backward(m, lin, dinp, dout_bf, inp, xp, N);  // before dout_bf becomes MVUE's dZ
  mvue_dout(m, lin, dout_bf, dout, N);
  m.timing.gemm_flops += 2.0 * flops;
  if (sparse_weight_grad(m, lin, N)) {  // dW += bf16(dZ^T inp), the layer's weights in one product
    float* dw = grad(m, lin.first);
    sparse_wgrad(m, lin).multiply(a.wgrad_bf, dout_bf, inp, N, m.stream);
    widen(dw, a.wgrad_bf, nullptr, dw, lin.OC, lin.IC, m.stream);  // out = res: each element read, then written
    m.timing.sparse_gemm_flops += flops;
    return;
  }
  if (!has_scale(m, lin)) {
    m.blas.gemm(true, false, lin.OC, lin.IC, N, 1.0f, dout_bf, lin.OC, inp, lin.IC, 1.0f, grad(m, lin.first), lin.IC,
                m.stream);
    return;
  }
  for (int64_t i = 0; i < lin.count; i++) {  // one GEMM per weight: its rows of dout's columns
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    const int64_t OCt = t.shape[0];
    const __nv_bfloat16* dz = dout_bf + i * OCt;
    if (t.transform.kind != SIEVE_TRANSFORM_SCALE) {
      m.blas.gemm(true, false, OCt, lin.IC, N, 1.0f, dz, lin.OC, inp, lin.IC, 1.0f, grad(m, idx), lin.IC, m.stream);
      continue;
    }
    m.blas.gemm(true, false, OCt, lin.IC, N, 1.0f, dz, lin.OC, inp, lin.IC, 0.0f, a.scale_dwt, lin.IC, m.stream);
    weight_scale_backward(grad(m, idx), grad(m, t.scale), a.scale_dwt, param(m, idx), param(m, t.scale), OCt, lin.IC,
                          scale_segments(m, t), m.stream);
  }
}

// Rows of logits formed at once by the LM head: about 1 GiB of fp32 logits at most.
int64_t head_chunk(int64_t N, int64_t V) { return std::min(N, std::max<int64_t>(256, (int64_t(1) << 28) / V)); }


// The largest dW of a layer whose weight gradient is a 2:4 product for N rows (sizes wgrad_bf).
int64_t max_sparse_wgrad_size(const CudaModel& m, int64_t N) {
  int64_t n = 0;
  for (const LayerLinears& ll : m.net.layers)
    for (auto member : kLinears)
      if (sparse_weight_grad(m, ll.*member, N)) n = std::max(n, (ll.*member).OC * (ll.*member).IC);
  return n;
}

// The largest weight under SCALE (sizes scale_dwt; 0 while there is none).
int64_t max_scaled_size(const CudaModel& m) {
  int64_t n = 0;
  for (const TensorEntry& t : m.net.tensors)
    if (t.transform.kind == SIEVE_TRANSFORM_SCALE) n = std::max(n, t.size);
  return n;
}

int64_t max_linear_width(const CudaModel& m) {
  int64_t n = m.net.C;
  for (const LayerLinears& ll : m.net.layers)
    for (auto member : kLinears) n = std::max({n, (ll.*member).OC, (ll.*member).IC});
  return n;
}

// Carves an arena into named arrays; called once with base = null to measure.
template <class T>
struct Carver {
  T* base;
  int64_t used = 0;
  T* take(int64_t n) {
    T* p = base ? base + used : nullptr;
    used += (n + 63) / 64 * 64;  // keep every array 128-byte aligned (cuBLASLt prefers it)
    return p;
  }
};

void carve_activations(Activations& a, Carver<float>& f, Carver<__nv_bfloat16>& h, Carver<int32_t>& ints,
                       const CudaModel& m, int64_t B, int64_t T) {
  const int64_t N = B * T, L = m.net.L, C = m.net.C, NH = m.net.NH, FC = m.net.FC, H = m.net.H, V = m.net.V;
  a.B = B;
  a.T = T;
  a.head_rows = head_chunk(N, V);
  a.x = f.take((L + 1) * N * C);
  a.xmid = f.take(L * N * C);
  a.ln1_mean = f.take(L * N);
  a.ln1_rstd = f.take(L * N);
  a.qkv = f.take(L * N * 3 * C);
  a.lse = f.take(L * B * NH * T);
  a.atty = f.take(L * N * C);
  a.ln2_mean = f.take(L * N);
  a.ln2_rstd = f.take(L * N);
  a.fc = f.take(L * N * FC);
  a.tap_inp = f.take(N * std::max(C, H));
  a.lnf_mean = f.take(N);
  a.lnf_rstd = f.take(N);
  a.dx = f.take(N * C);
  a.dln = f.take(N * C);
  a.datty = f.take(N * C);
  a.dqkv = f.take(N * 3 * C);
  a.dfc = f.take(N * FC);
  a.dact = f.take(N * H);
  a.logits = f.take(a.head_rows * head_ld(V));
  a.teacher = f.take(a.head_rows * head_ld(V));
  a.ce = f.take(N);
  a.kl = f.take(N);
  a.att_scratch = f.take((int64_t)attention_backward_scratch_floats(B, T, C, NH));
  const int64_t widest = std::max({max_linear_width(m), FC, 3 * C});
  a.reduce_scratch = f.take((int64_t)std::max(norm_backward_scratch_floats(N, C), bias_backward_scratch_floats(N, widest)));
  a.ln1_bf = h.take(L * N * C);
  a.atty_bf = h.take(L * N * C);
  a.ln2_bf = h.take(L * N * C);
  a.act_bf = h.take(L * N * H);
  a.lnf_bf = h.take(N * C);
  a.grad_bf = h.take(std::max(N * widest, a.head_rows * head_ld(V)));
  a.sparse_bf = any_sparse_transform(m) ? h.take(N * widest) : nullptr;
  a.wgrad_bf = h.take(max_sparse_wgrad_size(m, N));
  a.scale_dwt = f.take(max_scaled_size(m));
  a.slorb_xp = h.take(L * N * m.slorb.width);
  a.slorb_dxp = h.take(N * m.slorb.rmax);
  a.targets = ints.take(N);
}

void ensure_activations(CudaModel& m, int64_t B, int64_t T) {
  Carver<float> f{nullptr};
  Carver<__nv_bfloat16> h{nullptr};
  Carver<int32_t> ints{nullptr};
  Activations probe{};
  carve_activations(probe, f, h, ints, m, B, T);
  if (m.train_mem.size() < f.used || m.train_bf.size() < h.used || m.train_ints.size() < ints.used) {
    // free the old arenas first: both at once may not fit
    m.train_mem = DeviceBuffer<float>();
    m.train_bf = DeviceBuffer<__nv_bfloat16>();
    m.train_ints = DeviceBuffer<int32_t>();
    m.train_mem = DeviceBuffer<float>(f.used);
    m.train_bf = DeviceBuffer<__nv_bfloat16>(h.used);
    m.train_ints = DeviceBuffer<int32_t>(ints.used);
  }
  Carver<float> fc{m.train_mem.get()};
  Carver<__nv_bfloat16> hc{m.train_bf.get()};
  Carver<int32_t> ic{m.train_ints.get()};
  carve_activations(m.acts, fc, hc, ic, m, B, T);
}

// One block's slices of the activations (train_io in cpu/model.cc).
struct BlockIO {
  float *x_in, *x_mid, *x_out, *ln1_mean, *ln1_rstd, *qkv, *lse, *atty, *ln2_mean, *ln2_rstd, *fc;
  __nv_bfloat16 *ln1_bf, *atty_bf, *ln2_bf, *act_bf;
  __nv_bfloat16* slorb_xp;  // the block's (N, slorb.width) X P^T of its SLoRB weights
};

BlockIO block_io(CudaModel& m, int64_t l) {
  Activations& a = m.acts;
  const int64_t N = a.B * a.T, C = m.net.C;
  BlockIO io;
  io.x_in = a.x + l * N * C;
  io.x_out = a.x + (l + 1) * N * C;
  io.x_mid = a.xmid + l * N * C;
  io.ln1_mean = a.ln1_mean + l * N;
  io.ln1_rstd = a.ln1_rstd + l * N;
  io.qkv = a.qkv + l * N * 3 * C;
  io.lse = a.lse + l * a.B * m.net.NH * a.T;
  io.atty = a.atty + l * N * C;
  io.ln2_mean = a.ln2_mean + l * N;
  io.ln2_rstd = a.ln2_rstd + l * N;
  io.fc = a.fc + l * N * m.net.FC;
  io.ln1_bf = a.ln1_bf + l * N * C;
  io.atty_bf = a.atty_bf + l * N * C;
  io.ln2_bf = a.ln2_bf + l * N * C;
  io.act_bf = a.act_bf + l * N * m.net.H;
  io.slorb_xp = a.slorb_xp + l * N * m.slorb.width;
  return io;
}

void norm_forward(CudaModel& m, float* out, __nv_bfloat16* out_bf, float* mean, float* rstd, const float* x,
                  int64_t w, int64_t b, int64_t N) {
  if (m.net.gpt2())
    layernorm_forward(out, out_bf, mean, rstd, x, param(m, w), param(m, b), m.net.cfg.norm_eps, N, m.net.C, m.stream);
  else
    rmsnorm_forward(out, out_bf, rstd, x, param(m, w), m.net.cfg.norm_eps, N, m.net.C, m.stream);
}

void norm_backward(CudaModel& m, float* dx, const float* dout, const float* x, const float* mean, const float* rstd,
                   int64_t w, int64_t b, int64_t N) {
  if (m.net.gpt2())
    layernorm_backward(dx, grad(m, w), grad(m, b), dout, x, mean, rstd, param(m, w), m.acts.reduce_scratch, N, m.net.C,
                       m.stream);
  else
    rmsnorm_backward(dx, grad(m, w), dout, x, rstd, param(m, w), m.acts.reduce_scratch, N, m.net.C, m.stream);
}

void block_forward(CudaModel& m, const BlockIO& io, int64_t l, int64_t B, int64_t T) {
  const LayerLinears& ll = m.net.layers[l];
  const int64_t N = B * T, C = m.net.C;
  float* tap_inp = m.linear_tap ? m.acts.tap_inp : nullptr;  // else the bf16 copies only
  // attention: x_mid = x_in + out(attention(qkv(norm1(x_in))))
  norm_forward(m, tap_inp, io.ln1_bf, io.ln1_mean, io.ln1_rstd, io.x_in, ll.norm1_w, ll.norm1_b, N);
  linear_forward(m, ll.qkv, io.qkv, nullptr, tap_inp, io.ln1_bf, N, io.slorb_xp);
  if (!m.net.gpt2()) rope_forward(io.qkv, m.rope_cos.get(), m.rope_sin.get(), B, T, C, m.net.NH, m.stream);
  attention_forward(io.atty, io.atty_bf, io.lse, io.qkv, B, T, C, m.net.NH, m.stream);
  linear_forward(m, ll.out, io.x_mid, io.x_in, io.atty, io.atty_bf, N, io.slorb_xp);
  // MLP: x_out = x_mid + down(act(up(norm2(x_mid))))
  norm_forward(m, tap_inp, io.ln2_bf, io.ln2_mean, io.ln2_rstd, io.x_mid, ll.norm2_w, ll.norm2_b, N);
  linear_forward(m, ll.up, io.fc, nullptr, tap_inp, io.ln2_bf, N, io.slorb_xp);
  if (m.net.gpt2())
    gelu_forward(tap_inp, io.act_bf, io.fc, N * m.net.H, m.stream);
  else
    swiglu_forward(tap_inp, io.act_bf, io.fc, N, m.net.H, m.stream);
  linear_forward(m, ll.down, io.x_out, io.x_mid, tap_inp, io.act_bf, N, io.slorb_xp);
}

// On entry acts.dx is d loss / d x_out of block l; on exit it is d loss / d x_in.
void block_backward(CudaModel& m, const BlockIO& io, int64_t l, int64_t B, int64_t T) {
  Activations& a = m.acts;
  const LayerLinears& ll = m.net.layers[l];
  const int64_t N = B * T, C = m.net.C;
  // MLP
  linear_backward(m, ll.down, a.dact, a.dx, io.act_bf, N, io.slorb_xp);
  // the activation's backward writes the bf16 copy of dfc the up layer's GEMMs read (GELU: and the
  // up layer's bias gradient) in the same pass; dfc in fp32 only for MVUE
  float* dfc = has_mvue(m, ll.up) ? a.dfc : nullptr;
  if (m.net.gpt2())  // GPT-2's linear layers have biases, LLaMA's none
    gelu_backward_bias(grad(m, ll.up.bias), dfc, a.grad_bf, a.dact, io.fc, a.reduce_scratch, N, m.net.H, m.stream);
  else
    swiglu_backward(dfc, a.grad_bf, a.dact, io.fc, N, m.net.H, m.stream);
  linear_backward(m, ll.up, a.dln, dfc, io.ln2_bf, N, io.slorb_xp, true);
  norm_backward(m, a.dx, a.dln, io.x_mid, io.ln2_mean, io.ln2_rstd, ll.norm2_w, ll.norm2_b, N);
  // attention
  linear_backward(m, ll.out, a.datty, a.dx, io.atty_bf, N, io.slorb_xp);
  attention_backward(a.dqkv, a.datty, io.qkv, io.atty, io.lse, a.att_scratch, B, T, C, m.net.NH, m.stream);
  if (!m.net.gpt2()) rope_backward(a.dqkv, m.rope_cos.get(), m.rope_sin.get(), B, T, C, m.net.NH, m.stream);
  linear_backward(m, ll.qkv, a.dln, a.dqkv, io.ln1_bf, N, io.slorb_xp);
  norm_backward(m, a.dx, a.dln, io.x_in, io.ln1_mean, io.ln1_rstd, ll.norm1_w, ll.norm1_b, N);
}

// The forward of the blocks and the final norm over acts (B, T) windows whose tokens the
// embedding plan holds; leaves lnf_bf for the head.
void forward_blocks(CudaModel& m, int64_t B, int64_t T) {
  Activations& a = m.acts;
  const int64_t N = B * T;
  embedding_forward(a.x, m.embedding.tokens(), param(m, m.net.tok_emb), param(m, m.net.pos_emb), B, T, m.net.C,
                    m.stream);
  for (int64_t l = 0; l < m.net.L; l++) {
    block_forward(m, block_io(m, l), l, B, T);
    check_cancel(m);
  }
  norm_forward(m, nullptr, a.lnf_bf, a.lnf_mean, a.lnf_rstd, a.x + m.net.L * N * m.net.C, m.net.norm_f_w,
               m.net.norm_f_b, N);
}

// ---------------------------------------------------------------- training

sieve_loss train_step(CudaModel& m, const int32_t* inputs, const int32_t* targets, const float* teacher,
                      const sieve_loss_opts& opts, int64_t B, int64_t T) {
  const double t_start = now_seconds();
  m.flat(SIEVE_BUFFER_GRADS);
  ensure_activations(m, B, T);
  prepare_weights(m, B * T);
  Activations& a = m.acts;
  const int64_t N = B * T, C = m.net.C, V = m.net.V;
  check_cancel(m);
  m.embedding.build(inputs, B, T, m.stream);
  SIEVE_CUDA(cudaMemcpyAsync(a.targets, targets, N * sizeof(int32_t), cudaMemcpyHostToDevice, m.stream));

  forward_blocks(m, B, T);

  // LM head, loss and the head's backward, chunk by chunk so (rows, V) logits stay bounded
  int64_t n_valid = 0;
  for (int64_t i = 0; i < N; i++) n_valid += targets[i] >= 0;
  const float dscale = opts.loss_scale / (float)n_valid;
  const float alpha = teacher ? opts.kd_alpha : 0.0f;
  const float tau = teacher ? opts.kd_tau : 1.0f;
  const __nv_bfloat16* Wh = m.head_bf.get();
  const int64_t ld = head_ld(V);
  // The head's weight gradient sums over the chunks into head_grad, (ld, C): with M = ld rows
  // cuBLASLt takes its fast kernel, as for the logits (the padding rows are dlogits' zero columns);
  // its first V rows are added to the head's gradient once, after the last chunk.
  if (!m.head_grad.get()) m.head_grad = DeviceBuffer<float>(ld * C);
  for (int64_t r0 = 0; r0 < N; r0 += a.head_rows) {
    const int64_t rows = std::min(a.head_rows, N - r0);
    m.blas.gemm(false, true, rows, ld, C, 1.0f, a.lnf_bf + r0 * C, C, Wh, C, 0.0f, a.logits, ld, m.stream);
    if (teacher)
      SIEVE_CUDA(cudaMemcpy2DAsync(a.teacher, ld * sizeof(float), teacher + r0 * V, V * sizeof(float),
                                   V * sizeof(float), rows, cudaMemcpyHostToDevice, m.stream));
    // dlogits in bf16 only (what the GEMMs read), zeros in the padding columns
    loss_rows(nullptr, a.grad_bf, a.ce + r0, a.kl + r0, a.logits, a.targets + r0, teacher ? a.teacher : nullptr, alpha,
              tau, dscale, rows, V, ld, m.stream);
    m.blas.gemm(false, false, rows, C, ld, 1.0f, a.grad_bf, ld, Wh, C, 0.0f, a.dln + r0 * C, C, m.stream);
    m.blas.gemm(true, false, ld, C, rows, 1.0f, a.grad_bf, ld, a.lnf_bf + r0 * C, C, r0 == 0 ? 0.0f : 1.0f,
                m.head_grad.get(), C, m.stream);
    m.timing.gemm_flops += 6.0 * (double)rows * (double)V * (double)C;
  }
  add_kernel<<<grid_for(V * C, 256), 256, 0, m.stream>>>(grad(m, m.net.head), m.head_grad.get(), V * C);
  SIEVE_LAUNCHED();

  // backward
  SIEVE_CUDA(cudaMemsetAsync(a.dx, 0, N * C * sizeof(float), m.stream));
  norm_backward(m, a.dx, a.dln, a.x + m.net.L * N * C, a.lnf_mean, a.lnf_rstd, m.net.norm_f_w, m.net.norm_f_b, N);
  for (int64_t l = m.net.L - 1; l >= 0; l--) {
    block_backward(m, block_io(m, l), l, B, T);
    check_cancel(m);
  }
  m.embedding.backward(grad(m, m.net.tok_emb), grad(m, m.net.pos_emb), a.dx, C, m.stream);

  // the loss, summed on the host in the CPU's order
  std::vector<float> ce(N), kl(N);
  SIEVE_CUDA(cudaMemcpyAsync(ce.data(), a.ce, N * sizeof(float), cudaMemcpyDeviceToHost, m.stream));
  SIEVE_CUDA(cudaMemcpyAsync(kl.data(), a.kl, N * sizeof(float), cudaMemcpyDeviceToHost, m.stream));
  SIEVE_CUDA(cudaStreamSynchronize(m.stream));
  double ce_sum = 0.0, kl_sum = 0.0;
  for (int64_t i = 0; i < N; i++) {
    ce_sum += ce[i];
    kl_sum += kl[i];
  }
  sieve_loss out{};
  out.tokens = n_valid;
  out.ce = ce_sum / (double)n_valid;
  out.kl = kl_sum / (double)n_valid;
  out.loss = teacher ? (1.0 - alpha) * out.ce + (double)alpha * tau * tau * out.kl : out.ce;
  m.timing.total_seconds += now_seconds() - t_start;
  m.timing.tokens += N;
  return out;
}

// Consecutive tensors the optimizer updates with one launch: the same rule, parameters, decay
// and hook (a whole model is usually a handful of runs).
struct Run {
  int64_t first, last;  // tensor indices, inclusive
};

bool same_update(const TensorEntry& a, const TensorEntry& b) {
  return a.rule.kind == b.rule.kind && a.rule.params == b.rule.params && a.decay == b.decay &&
         a.hook.kind == b.hook.kind && a.hook.params == b.hook.params;
}

float optimize(CudaModel& m, const sieve_optim_opts& o, int64_t t_step) {
  const double t_start = now_seconds();
  float* g = m.flat(SIEVE_BUFFER_GRADS);
  const int64_t P = m.net.num_params;
  const int64_t scratch = global_norm_scratch(P) + 1;
  if (m.doubles.size() < scratch) m.doubles = DeviceBuffer<double>(scratch);
  global_norm(m.doubles.get(), g, P, m.doubles.get() + 1, m.stream);
  double norm = 0.0;
  SIEVE_CUDA(cudaMemcpyAsync(&norm, m.doubles.get(), sizeof(double), cudaMemcpyDeviceToHost, m.stream));
  SIEVE_CUDA(cudaStreamSynchronize(m.stream));
  // Judged as the float the caller receives, as on the CPU.
  if (o.skip_nonfinite && !std::isfinite((float)norm)) {
    m.timing.optimizer_seconds += now_seconds() - t_start;
    return (float)norm;
  }
  bool moments = false;
  for (const TensorEntry& t : m.net.tensors) moments = moments || update_rule_uses_moments(t.rule.kind);
  float* mom = moments ? m.flat(SIEVE_BUFFER_ADAM_M) : nullptr;
  float* var = moments ? m.flat(SIEVE_BUFFER_ADAM_V) : nullptr;
  if (o.grad_clip > 0.0f) {
    const double coef = (double)o.grad_clip / (norm + 1e-6);
    if (coef < 1.0) {
      scale_kernel<<<grid_for(P, 256), 256, 0, m.stream>>>(g, (float)coef, P);
      SIEVE_LAUNCHED();
    }
  }
  const auto& ts = m.net.tensors;
  for (int64_t i = 0; i < (int64_t)ts.size();) {
    Run run{i, i};
    while (run.last + 1 < (int64_t)ts.size() && same_update(ts[run.first], ts[run.last + 1])) run.last++;
    i = run.last + 1;
    const TensorEntry& t = ts[run.first];
    const int64_t off = t.offset, n = ts[run.last].offset + ts[run.last].size - off;
    float* w = m.params.get() + off;
    const float* mask = m.masks.get() ? m.masks.get() + off : nullptr;
    if (t.hook.kind == SIEVE_HOOK_MASKED_DECAY) masked_decay(g + off, w, mask, t.hook.params[0], n, m.stream);
    const float wd = t.decay ? o.weight_decay : 0.0f;
    switch (t.rule.kind) {
      case SIEVE_RULE_ADAMW:
        adamw_update(w, mom + off, var + off, g + off, o.lr, o.beta1, o.beta2, o.eps, wd, t_step, n, m.stream);
        break;
      case SIEVE_RULE_FROZEN: break;
      case SIEVE_RULE_AST:
        ast_update(w, mom + off, var + off, g + off, mask, o.lr, o.beta1, o.beta2, o.eps, wd, t.rule.params[0], t_step,
                   n, m.stream);
        break;
      case SIEVE_RULE_ADAMS:
        adams_update(w, mom + off, var + off, g + off, mask, o.lr, o.beta1, o.beta2, o.eps, t.rule.params[0],
                     t.rule.params[1], t_step, n, m.stream);
        break;
      default: fail(SIEVE_E_INVALID_ARGUMENT, "tensor %s: unknown update rule %d", t.name.c_str(), (int)t.rule.kind);
    }
  }
  SIEVE_CUDA(cudaStreamSynchronize(m.stream));
  m.timing.optimizer_seconds += now_seconds() - t_start;
  return (float)norm;
}

}  // namespace

// ---------------------------------------------------------------- memory

WeightGrad24 weight_grad24_from_env() {
  constexpr WeightGrad24 kModes[] = {WeightGrad24::automatic, WeightGrad24::on, WeightGrad24::off};
  return kModes[env_choice("SIEVE_CUDA_WGRAD24", {"auto", "on", "off"})];
}

CudaModel::CudaModel(const sieve_model& m)
    : model(m),
      net(m.layout),
      slorb(m.layout),
      compression(compression_from_env()),
      weight_grad24(weight_grad24_from_env()) {
  SIEVE_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  SIEVE_CUDA(cudaStreamCreateWithFlags(&compress_stream, cudaStreamNonBlocking));
  SIEVE_CUDA(cudaEventCreateWithFlags(&weights_ready, cudaEventDisableTiming));
  SIEVE_CUDA(cudaEventCreateWithFlags(&compressions_done, cudaEventDisableTiming));
  params = DeviceBuffer<float>(net.num_params);
  fill(params.get(), 0.0f, net.num_params, stream);
  weights_bf = DeviceBuffer<__nv_bfloat16>(net.num_params);
  head_bf = DeviceBuffer<__nv_bfloat16>(head_ld(net.V) * net.C);
  SIEVE_CUDA(cudaMemsetAsync(head_bf.get(), 0, head_ld(net.V) * net.C * sizeof(__nv_bfloat16), stream));
  mask24.assign(net.tensors.size(), kNot24);
  if (!net.gpt2()) {
    const int64_t context = net.cfg.context, half = net.HS / 2;
    std::vector<float> c(context * half), s(context * half);
    rope_tables(c.data(), s.data(), net.cfg.rope_theta, context, net.HS);
    rope_cos = to_device(c);
    rope_sin = to_device(s);
  }
  counts = DeviceBuffer<int64_t>(1);
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

CudaModel::~CudaModel() {
  if (compress_stream) cudaStreamSynchronize(compress_stream);  // before the layers' buffers go
  for (cudaEvent_t e : {weights_ready, compressions_done})
    if (e) cudaEventDestroy(e);
  if (compress_stream) cudaStreamDestroy(compress_stream);
  if (stream) cudaStreamDestroy(stream);
}

namespace {
// What a flat buffer holds before it is first written: masks keep everything.
float initial_value(int32_t which) { return which == SIEVE_BUFFER_MASKS ? 1.0f : 0.0f; }
}  // namespace

DeviceBuffer<float>& CudaModel::buffer(int32_t which) {
  DeviceBuffer<float>* const all[] = {&params, &grads, &masks, &adam_m, &adam_v};  // indexed by SIEVE_BUFFER_*
  return *all[which];
}

float* CudaModel::flat(int32_t which) {
  DeviceBuffer<float>& b = buffer(which);
  if (!b.get()) {
    b = DeviceBuffer<float>(net.num_params);
    fill(b.get(), initial_value(which), net.num_params, stream);
  }
  return b.get();
}

void CudaModel::read(int32_t which, int64_t offset, int64_t count, float* dst) {
  const DeviceBuffer<float>& b = buffer(which);
  if (!b.get()) {
    std::fill(dst, dst + count, initial_value(which));
    return;
  }
  SIEVE_CUDA(cudaMemcpyAsync(dst, b.get() + offset, count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

void CudaModel::write(int32_t which, int64_t offset, int64_t count, const float* src) {
  float* b = flat(which);
  SIEVE_CUDA(cudaMemcpyAsync(b + offset, src, count * sizeof(float), cudaMemcpyHostToDevice, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
  if (which != SIEVE_BUFFER_MASKS) return;
  // A mask from the host (a pruned model's, a checkpoint's) may be anything: the layers it touches
  // multiply through cuSPARSELt only if it is 2:4, counted here once rather than every pass.
  for (size_t i = 0; i < net.tensors.size(); i++) {
    const TensorEntry& t = net.tensors[i];
    if (t.offset >= offset + count || offset >= t.offset + t.size) continue;
    // the groups of 4 that are not 2:4, counted along IC (rows) or along OC (cols)
    const auto violations = [&](auto count24) {
      int64_t v = 0;
      count24(counts.get(), b + t.offset, t.shape[0], t.shape[1], stream);
      SIEVE_CUDA(cudaMemcpyAsync(&v, counts.get(), sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
      SIEVE_CUDA(cudaStreamSynchronize(stream));
      return v;
    };
    mask24[i] = kNot24;
    if (t.ndim != 2 || t.shape[1] % 4 || violations(count24_along_rows) > 0) continue;
    mask24[i] = kAlongIC;
    if (t.shape[0] % 4 == 0 && violations(count24_along_cols) == 0) mask24[i] = kTransposable;
  }
}

void CudaModel::seam_changed(int64_t idx, Seam seam) {
  const TensorEntry& t = net.tensors[idx];
  switch (seam) {
    case Seam::transform:
      if (transform_uses_mask(t.transform.kind)) flat(SIEVE_BUFFER_MASKS);
      return;
    case Seam::hook:
      if (grad_hook_uses_mask(t.hook.kind)) flat(SIEVE_BUFFER_MASKS);
      return;
    case Seam::rule:
      if (update_rule_uses_mask(t.rule.kind)) flat(SIEVE_BUFFER_MASKS);
      return;
  }
}

void CudaModel::zero_grad() {
  SIEVE_CUDA(cudaMemsetAsync(flat(SIEVE_BUFFER_GRADS), 0, net.num_params * sizeof(float), stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

sieve_timers CudaModel::timers() const { return timing; }
void CudaModel::reset_timers() { timing = sieve_timers{}; }

// ---------------------------------------------------------------- the passes

sieve_loss CudaModel::forward_backward(const int32_t* inputs, const int32_t* targets, const float* teacher,
                                       const sieve_loss_opts& opts, int64_t B, int64_t T) {
  return train_step(*this, inputs, targets, teacher, opts, B, T);
}

float CudaModel::optimizer_step(const sieve_optim_opts& opts, int64_t t) { return optimize(*this, opts, t); }

namespace {

// The memory-light forward over B windows in chunks: the NLL of every predicted position, or the
// logits, or (both null: input_hessians' tap) the blocks only.
void infer_chunks(CudaModel& m, float* nll, float* logits, const int32_t* tokens, int64_t B, int64_t T,
                  sieve_progress_fn progress, void* user) {
  const int64_t C = m.net.C, V = m.net.V;
  // windows per chunk: about 16k tokens, enough rows to keep the GEMMs busy
  const int64_t Bc = std::max<int64_t>(1, std::min<int64_t>(B, 16384 / T));
  prepare_weights(m, Bc * T);
  ensure_activations(m, Bc, T);
  Activations& a = m.acts;
  std::vector<int32_t> next;
  std::vector<float> ce;
  for (int64_t b0 = 0; b0 < B; b0 += Bc) {
    check_cancel(m);
    const int64_t bc = std::min(Bc, B - b0), N = bc * T;
    const int32_t* tok = tokens + b0 * T;
    m.embedding.build(tok, bc, T, m.stream);
    forward_blocks(m, bc, T);
    for (int64_t r0 = 0; (nll || logits) && r0 < N; r0 += a.head_rows) {
      const int64_t rows = std::min(a.head_rows, N - r0), ld = head_ld(V);
      m.blas.gemm(false, true, rows, ld, C, 1.0f, a.lnf_bf + r0 * C, C, m.head_bf.get(), C, 0.0f, a.logits, ld,
                  m.stream);
      if (logits) {
        SIEVE_CUDA(cudaMemcpy2DAsync(logits + (b0 * T + r0) * V, V * sizeof(float), a.logits, ld * sizeof(float),
                                     V * sizeof(float), rows, cudaMemcpyDeviceToHost, m.stream));
        continue;
      }
      // the next token of each position (none for the last of a window), then its NLL
      next.resize(rows);
      for (int64_t r = 0; r < rows; r++) {
        const int64_t b = (r0 + r) / T, t = (r0 + r) % T;
        next[r] = t == T - 1 ? -1 : tok[b * T + t + 1];
      }
      SIEVE_CUDA(cudaMemcpyAsync(a.targets, next.data(), rows * sizeof(int32_t), cudaMemcpyHostToDevice, m.stream));
      loss_rows(nullptr, nullptr, a.ce + r0, nullptr, a.logits, a.targets, nullptr, 0.0f, 1.0f, 0.0f, rows, V, ld,
                m.stream);
      SIEVE_CUDA(cudaStreamSynchronize(m.stream));  // `next` is reused by the next chunk
    }
    if (nll) {
      ce.resize(N);
      SIEVE_CUDA(cudaMemcpyAsync(ce.data(), a.ce, N * sizeof(float), cudaMemcpyDeviceToHost, m.stream));
      SIEVE_CUDA(cudaStreamSynchronize(m.stream));
      for (int64_t b = 0; b < bc; b++)
        std::copy(ce.begin() + b * T, ce.begin() + b * T + T - 1, nll + (b0 + b) * (T - 1));
    }
    SIEVE_CUDA(cudaStreamSynchronize(m.stream));
    if (progress) progress(user, b0 + bc, B);
  }
}

}  // namespace

void CudaModel::infer(float* nll, float* logits, const int32_t* tokens, int64_t B, int64_t T,
                      sieve_progress_fn progress, void* user) {
  infer_chunks(*this, nll, logits, tokens, B, T, progress, user);
}

// ---------------------------------------------------------------- 2:4 sparsity

void CudaModel::update_masks(int32_t method, const int64_t* tensors, int64_t n, int64_t* flips) {
  float* all = flat(SIEVE_BUFFER_MASKS);
  int64_t widest = 0;
  for (int64_t i = 0; i < n; i++) widest = std::max(widest, net.tensors[tensors[i]].size);
  DeviceBuffer<float> fresh(widest);
  for (int64_t i = 0; i < n; i++) {
    check_cancel(*this);
    const TensorEntry& t = net.tensors[tensors[i]];
    const int64_t R = t.shape[0], K = t.shape[1];
    if (method == SIEVE_MASK_TRANSPOSABLE)
      mask24_transposable(fresh.get(), params.get() + t.offset, R, K, stream);
    else
      mask24_magnitude(fresh.get(), params.get() + t.offset, R, K, stream);
    float* mask = all + t.offset;
    mask_flips(counts.get(), mask, fresh.get(), t.size, stream);
    SIEVE_CUDA(cudaMemcpyAsync(mask, fresh.get(), t.size * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    SIEVE_CUDA(cudaMemcpyAsync(&flips[i], counts.get(), sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
    SIEVE_CUDA(cudaStreamSynchronize(stream));
    mask24[tensors[i]] = method == SIEVE_MASK_TRANSPOSABLE ? kTransposable : kAlongIC;
  }
}

void CudaModel::mask_stats(const int64_t* tensors, int64_t n, double* pruned_abs, double* total_abs) {
  if (doubles.size() < 2 * kStatsBlocks) doubles = DeviceBuffer<double>(2 * kStatsBlocks);
  std::vector<double> partial(2 * kStatsBlocks);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    abs_sums_kernel<<<kStatsBlocks, kStatsThreads, 0, stream>>>(doubles.get(), params.get() + t.offset,
                                                                masks.get() ? masks.get() + t.offset : nullptr, t.size);
    SIEVE_LAUNCHED();
    SIEVE_CUDA(cudaMemcpyAsync(partial.data(), doubles.get(), partial.size() * sizeof(double), cudaMemcpyDeviceToHost,
                               stream));
    SIEVE_CUDA(cudaStreamSynchronize(stream));
    pruned_abs[i] = total_abs[i] = 0.0;
    for (int k = 0; k < kStatsBlocks; k++) {
      pruned_abs[i] += partial[k];
      total_abs[i] += partial[kStatsBlocks + k];
    }
  }
}

void CudaModel::count24(const int64_t* tensors, int64_t n, bool both_ways, int64_t* violations) {
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    const float* w = params.get() + t.offset;
    int64_t rows = 0, cols = 0;
    count24_along_rows(counts.get(), w, t.shape[0], t.shape[1], stream);
    SIEVE_CUDA(cudaMemcpyAsync(&rows, counts.get(), sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
    SIEVE_CUDA(cudaStreamSynchronize(stream));
    if (both_ways) {
      count24_along_cols(counts.get(), w, t.shape[0], t.shape[1], stream);
      SIEVE_CUDA(cudaMemcpyAsync(&cols, counts.get(), sizeof(int64_t), cudaMemcpyDeviceToHost, stream));
      SIEVE_CUDA(cudaStreamSynchronize(stream));
    }
    violations[i] = rows + cols;
  }
}

void CudaModel::sste_dots(int64_t tensor, double* ws, double* ss) {
  const TensorEntry& t = net.tensors[tensor];
  const int64_t need = 2 + cuda::sste_dots_scratch(t.size);
  if (doubles.size() < need) doubles = DeviceBuffer<double>(need);
  cuda::sste_dots(doubles.get(), params.get() + t.offset, t.size, doubles.get() + 2, stream);
  double dots[2];
  SIEVE_CUDA(cudaMemcpyAsync(dots, doubles.get(), sizeof dots, cudaMemcpyDeviceToHost, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
  *ws = dots[0];
  *ss = dots[1];
}

void CudaModel::slorb_init_mean(const int64_t* tensors, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    cuda::slorb_init_mean(params.get() + net.tensors[t.slorb_s].offset, params.get() + t.offset,
                          masks.get() ? masks.get() + t.offset : nullptr, t.shape[0], t.shape[1], net.cfg.slorb_k,
                          stream);
  }
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

void CudaModel::materialize(int64_t tensor) {
  const TensorEntry& t = net.tensors[tensor];
  float* w = params.get() + t.offset;
  // The kernels read W and write W~ through restrict pointers: never in place.
  DeviceBuffer<float> effective(t.size);
  if (t.transform.kind == SIEVE_TRANSFORM_MASK)
    masked_weight(effective.get(), nullptr, w, masks.get() + t.offset, t.size, stream);
  else if (t.transform.kind == SIEVE_TRANSFORM_SSTE)
    sste_threshold(effective.get(), nullptr, nullptr, w, t.transform.params[0], t.size, stream);
  else if (t.transform.kind == SIEVE_TRANSFORM_SCALE)
    weight_scale(effective.get(), nullptr, w, params.get() + net.tensors[t.scale].offset, t.shape[0], t.shape[1],
                 scale_segments(*this, t), stream);
  else
    return;  // NONE: W~ = W already
  SIEVE_CUDA(cudaMemcpyAsync(w, effective.get(), t.size * sizeof(float), cudaMemcpyDeviceToDevice, stream));
  if (t.transform.kind == SIEVE_TRANSFORM_SCALE) {  // A is folded into W: back to ones
    const TensorEntry& a = net.tensors[t.scale];
    fill(params.get() + a.offset, 1.0f, a.size, stream);
  }
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

// ---------------------------------------------------------------- quantization

namespace {

// acc (IC, IC) += x^T x over N rows, each product and sum in double, the upper triangle only (the
// caller mirrors it): 16 x 16 tiles of acc, the rows staged through shared memory 32 at a time.
constexpr int kGramTile = 16, kGramRows = 32;
__global__ void gram_upper_kernel(double* acc, const float* x, int64_t N, int64_t IC) {
  const int64_t a0 = (int64_t)blockIdx.y * kGramTile, b0 = (int64_t)blockIdx.x * kGramTile;
  if (b0 + kGramTile <= a0) return;  // wholly below the diagonal
  __shared__ float xa[kGramRows][kGramTile], xb[kGramRows][kGramTile];
  const int ty = threadIdx.y, tx = threadIdx.x, lin = ty * kGramTile + tx;
  double sum = 0.0;
  for (int64_t r0 = 0; r0 < N; r0 += kGramRows) {
    for (int k = lin; k < kGramRows * kGramTile; k += kGramTile * kGramTile) {
      const int r = k / kGramTile, c = k % kGramTile;
      const bool row = r0 + r < N;
      xa[r][c] = row && a0 + c < IC ? x[(r0 + r) * IC + a0 + c] : 0.0f;
      xb[r][c] = row && b0 + c < IC ? x[(r0 + r) * IC + b0 + c] : 0.0f;
    }
    __syncthreads();
    for (int r = 0; r < kGramRows; r++) sum += (double)xa[r][ty] * (double)xb[r][tx];
    __syncthreads();
  }
  const int64_t a = a0 + ty, b = b0 + tx;
  if (a < IC && b < IC && b >= a) acc[a * IC + b] += sum;
}

}  // namespace

void CudaModel::input_hessians(double* out, const int64_t* tensors, int64_t n, const int32_t* tokens, int64_t B,
                               int64_t T, sieve_progress_fn progress, void* user) {
  // one accumulator per distinct linear layer (LLaMA's gate and up share theirs), as on the CPU
  const LinearGroups groups(net, tensors, n);
  const std::vector<const Linear*>& lins = groups.lins;
  const std::vector<int64_t>& slot = groups.slot;
  std::vector<DeviceBuffer<double>> sums;
  for (const Linear* lin : lins) {
    sums.emplace_back(lin->IC * lin->IC);
    SIEVE_CUDA(cudaMemsetAsync(sums.back().get(), 0, lin->IC * lin->IC * sizeof(double), stream));
  }
  {
    const TapScope tap(linear_tap, [&](const Linear& lin, const float* inp, int64_t N) {
      const int64_t g = groups.find(lin);
      if (g < 0) return;
      const int64_t IC = lin.IC, tiles = (IC + kGramTile - 1) / kGramTile;
      gram_upper_kernel<<<dim3((unsigned)tiles, (unsigned)tiles), dim3(kGramTile, kGramTile), 0, stream>>>(
          sums[g].get(), inp, N, IC);
      SIEVE_LAUNCHED();
    });
    infer_chunks(*this, nullptr, nullptr, tokens, B, T, progress, user);
  }
  double* o = out;
  for (int64_t i = 0; i < n; i++) {
    const int64_t IC = lins[slot[i]]->IC;
    SIEVE_CUDA(cudaMemcpyAsync(o, sums[slot[i]].get(), IC * IC * sizeof(double), cudaMemcpyDeviceToHost, stream));
    SIEVE_CUDA(cudaStreamSynchronize(stream));
    for (int64_t a = 0; a < IC; a++)  // the upper triangle, mirrored: exactly symmetric
      for (int64_t b = a + 1; b < IC; b++) o[b * IC + a] = o[a * IC + b];
    o += IC * IC;
  }
}

void CudaModel::post_quant_integral(double* pqi, double* losses, const int64_t* tensors, int64_t n,
                                    const float* deltas, const double* points, const double* weights, int64_t K,
                                    const int32_t* inputs, const int32_t* targets, int64_t M, int64_t T,
                                    int64_t micro, sieve_progress_fn progress, void* user) {
  // the listed tensors' parameters, deltas and PQI side by side on the device
  std::vector<int64_t> offsets(n + 1, 0);
  for (int64_t i = 0; i < n; i++) offsets[i + 1] = offsets[i] + net.tensors[tensors[i]].size;
  const int64_t D = offsets[n];
  DeviceBuffer<float> saved(D), d_deltas(D);
  DeviceBuffer<double> d_pqi(D);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    SIEVE_CUDA(cudaMemcpyAsync(saved.get() + offsets[i], params.get() + t.offset, t.size * sizeof(float),
                               cudaMemcpyDeviceToDevice, stream));
  }
  SIEVE_CUDA(cudaMemcpyAsync(d_deltas.get(), deltas, D * sizeof(float), cudaMemcpyHostToDevice, stream));
  SIEVE_CUDA(cudaMemsetAsync(d_pqi.get(), 0, D * sizeof(double), stream));
  // The parameters are back to w, bit for bit, however this ends.
  struct Restore {
    CudaModel& m;
    const DeviceBuffer<float>& saved;
    const std::vector<int64_t>& offsets;
    const int64_t* tensors;
    int64_t n;
    ~Restore() {
      for (int64_t i = 0; i < n; i++) {
        const TensorEntry& t = m.net.tensors[tensors[i]];
        cudaMemcpyAsync(m.params.get() + t.offset, saved.get() + offsets[i], t.size * sizeof(float),
                        cudaMemcpyDeviceToDevice, m.stream);
      }
      cudaStreamSynchronize(m.stream);
    }
  } restore{*this, saved, offsets, tensors, n};

  int64_t total_valid = 0;
  for (int64_t i = 0; i < M * T; i++) total_valid += targets[i] >= 0;
  int64_t done = 0;
  const int64_t total = (K + 2) * M;
  // F(w + s delta) (and, with gradient, its gradient in the grads buffer)
  auto evaluate = [&](double s, bool gradient) -> double {
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = net.tensors[tensors[i]];
      axpy_point_kernel<<<grid_for(t.size, 256), 256, 0, stream>>>(params.get() + t.offset, saved.get() + offsets[i],
                                                                   d_deltas.get() + offsets[i], (float)s, t.size);
      SIEVE_LAUNCHED();
    }
    zero_grad();
    double loss = 0.0;
    for (int64_t b0 = 0; b0 < M; b0 += micro) {
      const int64_t bc = std::min(micro, M - b0);
      int64_t valid = 0;
      for (int64_t i = b0 * T; i < (b0 + bc) * T; i++) valid += targets[i] >= 0;
      if (valid > 0) {
        sieve_loss_opts opts{};
        opts.loss_scale = gradient ? (float)((double)valid / (double)total_valid) : 0.0f;
        opts.kd_alpha = 0.0f;
        opts.kd_tau = 1.0f;
        const sieve_loss l = train_step(*this, inputs + b0 * T, targets + b0 * T, nullptr, opts, bc, T);
        loss += l.ce * (double)valid;
      }
      done += bc;
      if (progress) progress(user, done, total);
      check_cancel(*this);
    }
    return loss / (double)total_valid;
  };
  losses[0] = evaluate(0.0, false);
  losses[1] = evaluate(1.0, false);
  for (int64_t k = 0; k < K; k++) {
    losses[2 + k] = evaluate(points[k], true);
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = net.tensors[tensors[i]];
      pqi_accumulate_kernel<<<grid_for(t.size, 256), 256, 0, stream>>>(
          d_pqi.get() + offsets[i], d_deltas.get() + offsets[i], grads.get() + t.offset, weights[k], t.size);
      SIEVE_LAUNCHED();
    }
  }
  SIEVE_CUDA(cudaMemcpyAsync(pqi, d_pqi.get(), D * sizeof(double), cudaMemcpyDeviceToHost, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
}

}  // namespace sieve::cuda
