// model.cc — the CPU model: its buffers and copies, the seams' setup, the training
// forward + backward, the optimizer step and the memory-light inference path.
//
// Read block_forward / block_backward top to bottom to see a whole layer of either family.
// Promises: the same parameters and inputs give the same bits at any thread count (every
// op in ops.h keeps that promise); gradients accumulate (+=) until zero_grad.
#include "model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>

#include "core/rng.h"
#include "core/seams.h"
#include "gemm.h"
#include "grad_hook.h"
#include "ops.h"
#include "sparsity.h"
#include "update_rule.h"

namespace sieve::cpu {

// ---------------------------------------------------------------- buffers

Buffer::~Buffer() { release(); }

void Buffer::release() {
  std::free(data);
  data = nullptr;
  size = 0;
}

void Buffer::allocate(int64_t n, float fill) {
  release();
  const size_t bytes = ((size_t)std::max<int64_t>(n, 1) * sizeof(float) + 63) / 64 * 64;
  data = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!data) fail(SIEVE_E_OUT_OF_MEMORY, "out of memory allocating %lld floats", (long long)n);
  size = n;
  std::fill(data, data + n, fill);
}

// ---------------------------------------------------------------- the model's memory and seams

namespace {

// What a flat buffer holds before it is first written: masks keep everything.
float initial_value(int32_t which) { return which == SIEVE_BUFFER_MASKS ? 1.0f : 0.0f; }

}  // namespace

AttentionProbabilities attention_probabilities_from_env() {
  constexpr AttentionProbabilities kModes[] = {AttentionProbabilities::automatic, AttentionProbabilities::keep,
                                               AttentionProbabilities::recompute};
  return kModes[env_choice("SIEVE_CPU_ATTENTION", {"auto", "keep", "recompute"})];
}

CpuModel::CpuModel(const sieve_model& m)
    : model(m),
      net(m.layout),
      transform_state(m.layout.tensors.size()),
      slorb(m.layout),
      attention_probabilities(attention_probabilities_from_env()) {
  params.allocate(net.num_params, 0.0f);
  if (!net.gpt2()) {
    const int64_t context = net.cfg.context;
    rope_cos.resize(context * (net.HS / 2));
    rope_sin.resize(context * (net.HS / 2));
    rope_tables(rope_cos.data(), rope_sin.data(), net.cfg.rope_theta, context, net.HS);
  }
}

Buffer& CpuModel::buffer(int32_t which) {
  Buffer* const all[] = {&params, &grads, &masks, &adam_m, &adam_v};  // indexed by SIEVE_BUFFER_*
  return *all[which];
}

float* CpuModel::flat(int32_t which) {
  Buffer& b = buffer(which);
  if (b.empty()) b.allocate(net.num_params, initial_value(which));
  return b.data;
}

void CpuModel::read(int32_t which, int64_t offset, int64_t count, float* dst) {
  const Buffer& b = buffer(which);
  if (b.empty())
    std::fill(dst, dst + count, initial_value(which));  // never written: its initial value, still unallocated
  else
    std::copy(b.data + offset, b.data + offset + count, dst);
}

void CpuModel::write(int32_t which, int64_t offset, int64_t count, const float* src) {
  std::copy(src, src + count, flat(which) + offset);
}

TransformInputs CpuModel::transform_inputs(int64_t idx) const {
  const TensorEntry& t = net.tensors[idx];
  TransformInputs in{};
  in.w = params.data + t.offset;
  in.mask = masks.empty() ? nullptr : masks.data + t.offset;
  in.scale = t.scale >= 0 ? params.data + net.tensors[t.scale].offset : nullptr;
  in.R = t.shape[0];
  in.K = t.ndim == 2 ? t.shape[1] : 1;
  in.SG = t.scale >= 0 ? net.tensors[t.scale].shape[1] : 0;
  return in;
}

void CpuModel::seam_changed(int64_t idx, Seam seam) {
  const TensorEntry& t = net.tensors[idx];
  switch (seam) {
    case Seam::transform:
      if (transform_uses_mask(t.transform.kind)) flat(SIEVE_BUFFER_MASKS);
      if (!transform_is_identity(t.transform.kind) && wt.empty()) wt.allocate(net.num_params, 0.0f);
      transform_state[idx] = transform_setup(t.transform, transform_inputs(idx));
      return;
    case Seam::hook:
      if (grad_hook_uses_mask(t.hook.kind)) flat(SIEVE_BUFFER_MASKS);
      return;
    case Seam::rule:
      if (update_rule_uses_mask(t.rule.kind)) flat(SIEVE_BUFFER_MASKS);
      return;
  }
}

void CpuModel::zero_grad() {
  ThreadScope scope(model.threads);
  float* g = flat(SIEVE_BUFFER_GRADS);
  const int64_t P = net.num_params;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < P; i++) g[i] = 0.0f;
}

sieve_timers CpuModel::timers() const {
  sieve_timers out = timing;
  out.gemm_seconds = gemm_stats.seconds;
  out.gemm_flops = gemm_stats.flops;
  return out;
}

void CpuModel::reset_timers() {
  timing = sieve_timers{};
  gemm_stats = GemmStats{};
}

// ---------------------------------------------------------------- helpers of the passes

namespace {

void check_cancel(const CpuModel& m) {
  if (m.model.cancel.load(std::memory_order_relaxed)) fail(SIEVE_E_CANCELLED, "cancelled");
}

const float* param(const CpuModel& m, int64_t idx) {
  return idx < 0 ? nullptr : m.params.data + m.net.tensors[idx].offset;
}
float* grad(CpuModel& m, int64_t idx) { return idx < 0 ? nullptr : m.grads.data + m.net.tensors[idx].offset; }
// The tensor's slice of the masks buffer, or null before any seam needed the masks.
const float* mask(const CpuModel& m, const TensorEntry& t) {
  return m.masks.empty() ? nullptr : m.masks.data + t.offset;
}

bool linear_transformed(const CpuModel& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (!transform_is_identity(m.net.tensors[lin.first + i].transform.kind)) return true;
  return false;
}

bool linear_straight_through(const CpuModel& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (!transform_is_straight_through(m.net.tensors[lin.first + i].transform.kind)) return false;
  return true;
}

// The weight the forward multiplies by: W, or W~ when a transform is set.
const float* linear_weight(const CpuModel& m, const Linear& lin) {
  const int64_t off = m.net.tensors[lin.first].offset;
  return linear_transformed(m, lin) ? m.wt.data + off : m.params.data + off;
}

// W~ = f(W) for every transformed linear layer, once per pass.
void prepare_weights(CpuModel& m) {
  for (const LayerLinears& ll : m.net.layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down}) {
      if (!linear_transformed(m, *lin)) continue;
      for (int64_t i = 0; i < lin->count; i++) {
        const TensorEntry& t = m.net.tensors[lin->first + i];
        transform_forward(m.wt.data + t.offset, m.transform_inputs(lin->first + i), t.transform,
                          m.transform_state[lin->first + i]);
      }
    }
}

// Where X P^T of the SLoRB weight `idx` goes: its own slice of the block's training
// activations (kept for the backward), or one scratch reused by every weight (inference).
float* slorb_xp(const CpuModel& m, float* base, bool packed, int64_t idx, int64_t N) {
  return packed ? base + m.slorb.col[idx] * N : base;
}

// out (=, or += when accumulate) inp W~^T + bias, then + (inp P^T) S^T for each weight of the
// layer with SLoRB (METHODS 4.5), into its columns of out.
void linear_forward(CpuModel& m, const Linear& lin, float* out, const float* inp, const float* bias, int64_t N,
                    bool accumulate, float* xp_base, bool xp_packed, GemmStats* stats) {
  if (m.linear_tap) m.linear_tap(lin, inp, N);
  matmul_forward(out, inp, linear_weight(m, lin), bias, N, lin.IC, lin.OC, accumulate, stats);
  for (int64_t i = 0; i < lin.count; i++) {
    const TensorEntry& t = m.net.tensors[lin.first + i];
    if (t.slorb_s < 0) continue;
    const int64_t OCt = t.shape[0], r = m.net.slorb_rank(t), row0 = i * OCt;
    float* xp = slorb_xp(m, xp_base, xp_packed, lin.first + i, N);
    sgemm(false, true, N, r, lin.IC, 1.0f, inp, lin.IC, param(m, t.slorb_p), lin.IC, 0.0f, xp, r, stats);
    sgemm(false, true, N, OCt, r, 1.0f, xp, r, param(m, t.slorb_s), r, 1.0f, out + row0, lin.OC, stats);
  }
}

// The dZ the weight-gradient GEMM of `lin` multiplies: dout itself, or (some weight with MVUE
// on) a copy whose MVUE weights' columns are sparsified 2:4 along the N tokens.
const float* mvue_dout(CpuModel& m, const Linear& lin, const float* dout, int64_t N) {
  bool any = false;
  for (int64_t i = 0; i < lin.count; i++) any = any || m.net.tensors[lin.first + i].mvue;
  if (!any) return dout;
  float* out = m.acts.mvue_dout;
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    const int64_t OCt = t.shape[0], c0 = i * OCt;
    if (t.mvue) {
      const uint64_t key = mvue_key(t.mvue_seed, m.model.step, m.model.micro, idx);
      mvue24(out + c0, dout + c0, N, OCt, lin.OC, lin.OC, key);
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < N; r++) std::copy(dout + r * lin.OC + c0, dout + r * lin.OC + c0 + OCt, out + r * lin.OC + c0);
    }
  }
  return out;
}

// Backward of a linear layer through its transform: dinp = dout W~ (+ the SLoRB branch's),
// and the weight gradient (from dout, or its MVUE estimate) reaches W straight through
// (accumulated in place) or via transform_backward.
void linear_backward(CpuModel& m, const Linear& lin, float* dinp, const float* dout, const float* inp, int64_t N,
                     float* xp_base, GemmStats* stats) {
  Activations& a = m.acts;
  const float* W = linear_weight(m, lin);
  const bool ste = linear_straight_through(m, lin);
  float* dW = ste ? grad(m, lin.first) : a.dw_scratch;
  if (!ste) std::fill(dW, dW + lin.OC * lin.IC, 0.0f);
  const float* dout_w = mvue_dout(m, lin, dout, N);
  if (dout_w == dout) {
    matmul_backward(dinp, dW, grad(m, lin.bias), dout, inp, W, N, lin.IC, lin.OC, stats);
  } else {  // the input and bias gradients keep the dense dZ
    matmul_backward(dinp, nullptr, grad(m, lin.bias), dout, inp, W, N, lin.IC, lin.OC, stats);
    matmul_backward(nullptr, dW, nullptr, dout_w, inp, W, N, lin.IC, lin.OC, stats);
  }
  for (int64_t i = 0; i < lin.count; i++) {
    const TensorEntry& t = m.net.tensors[lin.first + i];
    if (t.slorb_s < 0) continue;
    // Z[:, cols] += XP S^T with XP = X P^T: dS += dZ^T XP, dXP = dZ S, dP += dXP^T X, dX += dXP P
    const int64_t OCt = t.shape[0], r = m.net.slorb_rank(t), c0 = i * OCt;
    const float* xp = slorb_xp(m, xp_base, true, lin.first + i, N);
    const float* dz = dout + c0;
    sgemm(true, false, OCt, r, N, 1.0f, dz, lin.OC, xp, r, 1.0f, grad(m, t.slorb_s), r, stats);
    sgemm(false, false, N, r, OCt, 1.0f, dz, lin.OC, param(m, t.slorb_s), r, 0.0f, a.slorb_dxp, r, stats);
    sgemm(true, false, r, lin.IC, N, 1.0f, a.slorb_dxp, r, inp, lin.IC, 1.0f, grad(m, t.slorb_p), lin.IC, stats);
    sgemm(false, false, N, lin.IC, r, 1.0f, a.slorb_dxp, r, param(m, t.slorb_p), lin.IC, 1.0f, dinp, lin.IC, stats);
  }
  if (ste) return;
  for (int64_t i = 0; i < lin.count; i++) {
    const int64_t idx = lin.first + i;
    const TensorEntry& t = m.net.tensors[idx];
    const int64_t rel = t.offset - m.net.tensors[lin.first].offset;
    transform_backward(m.grads.data + t.offset, t.scale >= 0 ? grad(m, t.scale) : nullptr, dW + rel,
                       m.transform_inputs(idx), t.transform, m.transform_state[idx]);
  }
}

// Rows of logits formed at once by the LM head: bounds the (rows, V) buffer.
int64_t head_chunk(int64_t N, int64_t V) {
  const int64_t rows = std::max<int64_t>(256, (int64_t(1) << 22) / V);
  return std::min(N, rows);
}

int64_t max_linear_size(const CpuModel& m) {
  int64_t n = 0;
  for (const LayerLinears& ll : m.net.layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down}) n = std::max(n, lin->OC * lin->IC);
  return n;
}

// The widest output of a linear layer with a weight under MVUE (0: none).
int64_t max_mvue_width(const CpuModel& m) {
  int64_t n = 0;
  for (const LayerLinears& ll : m.net.layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down})
      for (int64_t i = 0; i < lin->count; i++)
        if (m.net.tensors[lin->first + i].mvue) n = std::max(n, lin->OC);
  return n;
}

// Carves an arena into named arrays; called once with base = null to measure.
struct Carver {
  float* base;
  int64_t used = 0;
  float* take(int64_t n) {
    float* p = base ? base + used : nullptr;
    used += (n + 15) / 16 * 16;  // keep every array 64-byte aligned
    return p;
  }
};

void layout_activations(Activations& a, Carver& cv, const CpuModel& m, int64_t B, int64_t T, int64_t threads) {
  const int64_t N = B * T, L = m.net.L, C = m.net.C;
  a.B = B;
  a.T = T;
  a.x = cv.take((L + 1) * N * C);
  a.xmid = cv.take(L * N * C);
  a.ln1 = cv.take(L * N * C);
  a.ln1_mean = cv.take(L * N);
  a.ln1_rstd = cv.take(L * N);
  a.qkv = cv.take(L * N * 3 * C);
  const int64_t probabilities = L * B * m.net.NH * T * T;
  const bool keep = m.attention_probabilities == AttentionProbabilities::keep ||
                    (m.attention_probabilities == AttentionProbabilities::automatic &&
                     4.0 * (double)probabilities <= kKeptProbabilitiesBytes);
  a.att = keep ? cv.take(probabilities) : nullptr;
  a.atty = cv.take(L * N * C);
  a.ln2 = cv.take(L * N * C);
  a.ln2_mean = cv.take(L * N);
  a.ln2_rstd = cv.take(L * N);
  a.fc = cv.take(L * N * m.net.FC);
  a.act = cv.take(L * N * m.net.H);
  a.lnf = cv.take(N * C);
  a.lnf_mean = cv.take(N);
  a.lnf_rstd = cv.take(N);
  a.dx = cv.take(N * C);
  a.dln = cv.take(N * C);
  a.datty = cv.take(N * C);
  a.dqkv = cv.take(N * 3 * C);
  a.dfc = cv.take(N * m.net.FC);
  a.dact = cv.take(N * m.net.H);
  a.logits = cv.take(head_chunk(N, m.net.V) * m.net.V);
  a.att_scratch = cv.take(threads * (keep ? 1 : 2) * T * T);
  a.ce = cv.take(N);
  a.kl = cv.take(N);
  a.dw_scratch = cv.take(max_linear_size(m));
  a.slorb_xp = cv.take(L * N * m.slorb.width);
  a.slorb_dxp = cv.take(N * m.slorb.rmax);
  a.mvue_dout = cv.take(N * max_mvue_width(m));
}

void ensure_activations(CpuModel& m, int64_t B, int64_t T) {
  const int64_t threads = omp_get_max_threads();
  Carver measure{nullptr};
  Activations probe{};
  layout_activations(probe, measure, m, B, T, threads);
  if (m.train_mem.size < measure.used || m.train_threads < threads) {
    m.train_mem.release();
    m.train_mem.allocate(measure.used, 0.0f);
    m.train_threads = threads;
  }
  Carver cv{m.train_mem.data};
  layout_activations(m.acts, cv, m, B, T, threads);
}

// The buffers one block reads and writes, N = B T. Training gives each layer its own
// slices of Activations; inference passes the same buffers for every layer (x_in = x_mid
// = x_out: the residual stream is updated in place; ln1 = ln2 and their statistics too).
struct BlockIO {
  float* x_in;      // (N, C) residual stream into the block
  float* x_mid;     // (N, C) after the attention half
  float* x_out;     // (N, C) out of the block
  float* ln1;       // (N, C) norm1 output
  float* ln1_mean;  // (N) (LayerNorm only)
  float* ln1_rstd;  // (N)
  float* qkv;       // (N, 3C)
  float* att;       // (B, NH, T, T) probabilities kept for the backward; null for inference
  float* atty;      // (N, C) attention output
  float* ln2;       // (N, C) norm2 output
  float* ln2_mean;  // (N)
  float* ln2_rstd;  // (N)
  float* fc;        // (N, FC)
  float* act;       // (N, H)
  float* scratch;   // (threads, T, T) attention scratch
  float* slorb_xp;  // training: (N, RL) this block's X P^T of each SLoRB weight; inference: (N, rmax) scratch
  bool slorb_packed;  // true: one slice per weight (training); false: one shared scratch
};

void norm_forward(const CpuModel& m, float* out, float* mean, float* rstd, const float* x, int64_t w, int64_t b,
                  int64_t N) {
  if (m.net.gpt2())
    layernorm_forward(out, mean, rstd, x, param(m, w), param(m, b), m.net.cfg.norm_eps, N, m.net.C);
  else
    rmsnorm_forward(out, rstd, x, param(m, w), m.net.cfg.norm_eps, N, m.net.C);
}

void norm_backward(CpuModel& m, float* dx, const float* dout, const float* x, const float* mean, const float* rstd,
                   int64_t w, int64_t b, int64_t N) {
  if (m.net.gpt2())
    layernorm_backward(dx, grad(m, w), grad(m, b), dout, x, mean, rstd, param(m, w), N, m.net.C);
  else
    rmsnorm_backward(dx, grad(m, w), dout, x, rstd, param(m, w), N, m.net.C);
}

void block_forward(CpuModel& m, const BlockIO& io, int64_t l, int64_t B, int64_t T, GemmStats* stats,
                   double* att_seconds) {
  const LayerLinears& ll = m.net.layers[l];
  const int64_t N = B * T, C = m.net.C;
  // attention: x_mid = x_in + out(attention(qkv(norm1(x_in))))
  norm_forward(m, io.ln1, io.ln1_mean, io.ln1_rstd, io.x_in, ll.norm1_w, ll.norm1_b, N);
  linear_forward(m, ll.qkv, io.qkv, io.ln1, param(m, ll.qkv.bias), N, false, io.slorb_xp, io.slorb_packed, stats);
  const double t0 = now_seconds();
  if (!m.net.gpt2()) rope_forward(io.qkv, m.rope_cos.data(), m.rope_sin.data(), B, T, C, m.net.NH);
  attention_forward(io.atty, io.att, io.scratch, io.qkv, B, T, C, m.net.NH);
  if (att_seconds) *att_seconds += now_seconds() - t0;
  residual_bias_forward(io.x_mid, io.x_in, param(m, ll.out.bias), N, C);
  linear_forward(m, ll.out, io.x_mid, io.atty, nullptr, N, true, io.slorb_xp, io.slorb_packed, stats);
  // MLP: x_out = x_mid + down(act(up(norm2(x_mid))))
  norm_forward(m, io.ln2, io.ln2_mean, io.ln2_rstd, io.x_mid, ll.norm2_w, ll.norm2_b, N);
  linear_forward(m, ll.up, io.fc, io.ln2, param(m, ll.up.bias), N, false, io.slorb_xp, io.slorb_packed, stats);
  if (m.net.gpt2())
    gelu_forward(io.act, io.fc, N * m.net.H);
  else
    swiglu_forward(io.act, io.fc, N, m.net.H);
  residual_bias_forward(io.x_out, io.x_mid, param(m, ll.down.bias), N, C);
  linear_forward(m, ll.down, io.x_out, io.act, nullptr, N, true, io.slorb_xp, io.slorb_packed, stats);
}

// On entry a.dx is d loss / d x_out of block l; on exit it is d loss / d x_in.
void block_backward(CpuModel& m, const BlockIO& io, int64_t l, int64_t B, int64_t T, GemmStats* stats,
                    double* att_seconds) {
  Activations& a = m.acts;
  const LayerLinears& ll = m.net.layers[l];
  const int64_t N = B * T, C = m.net.C;
  // MLP
  linear_backward(m, ll.down, a.dact, a.dx, io.act, N, io.slorb_xp, stats);
  if (m.net.gpt2())
    gelu_backward(a.dfc, a.dact, io.fc, N * m.net.H);
  else
    swiglu_backward(a.dfc, a.dact, io.fc, N, m.net.H);
  linear_backward(m, ll.up, a.dln, a.dfc, io.ln2, N, io.slorb_xp, stats);
  norm_backward(m, a.dx, a.dln, io.x_mid, io.ln2_mean, io.ln2_rstd, ll.norm2_w, ll.norm2_b, N);
  // attention
  linear_backward(m, ll.out, a.datty, a.dx, io.atty, N, io.slorb_xp, stats);
  const double t0 = now_seconds();
  attention_backward(a.dqkv, a.att_scratch, a.datty, io.qkv, io.att, B, T, C, m.net.NH);
  if (!m.net.gpt2()) rope_backward(a.dqkv, m.rope_cos.data(), m.rope_sin.data(), B, T, C, m.net.NH);
  if (att_seconds) *att_seconds += now_seconds() - t0;
  linear_backward(m, ll.qkv, a.dln, a.dqkv, io.ln1, N, io.slorb_xp, stats);
  norm_backward(m, a.dx, a.dln, io.x_in, io.ln1_mean, io.ln1_rstd, ll.norm1_w, ll.norm1_b, N);
}

BlockIO train_io(CpuModel& m, int64_t l) {
  Activations& a = m.acts;
  const int64_t N = a.B * a.T, C = m.net.C;
  BlockIO io;
  io.x_in = a.x + l * N * C;
  io.x_out = a.x + (l + 1) * N * C;
  io.x_mid = a.xmid + l * N * C;
  io.ln1 = a.ln1 + l * N * C;
  io.ln1_mean = a.ln1_mean + l * N;
  io.ln1_rstd = a.ln1_rstd + l * N;
  io.qkv = a.qkv + l * N * 3 * C;
  io.att = a.att ? a.att + l * a.B * m.net.NH * a.T * a.T : nullptr;
  io.atty = a.atty + l * N * C;
  io.ln2 = a.ln2 + l * N * C;
  io.ln2_mean = a.ln2_mean + l * N;
  io.ln2_rstd = a.ln2_rstd + l * N;
  io.fc = a.fc + l * N * m.net.FC;
  io.act = a.act + l * N * m.net.H;
  io.scratch = a.att_scratch;
  io.slorb_xp = a.slorb_xp + l * N * m.slorb.width;
  io.slorb_packed = true;
  return io;
}

// ---------------------------------------------------------------- training

sieve_loss train_step(CpuModel& m, const int32_t* inputs, const int32_t* targets, const float* teacher,
                      const sieve_loss_opts& opts, int64_t B, int64_t T) {
  const double t_start = now_seconds();
  m.flat(SIEVE_BUFFER_GRADS);
  ensure_activations(m, B, T);
  prepare_weights(m);
  Activations& a = m.acts;
  GemmStats* stats = &m.gemm_stats;
  const int64_t N = B * T, C = m.net.C, V = m.net.V;
  check_cancel(m);

  // forward
  embedding_forward(a.x, inputs, param(m, m.net.tok_emb), param(m, m.net.pos_emb), B, T, C);
  for (int64_t l = 0; l < m.net.L; l++) {
    block_forward(m, train_io(m, l), l, B, T, stats, &m.timing.attention_seconds);
    check_cancel(m);
  }
  const float* xL = a.x + m.net.L * N * C;
  norm_forward(m, a.lnf, a.lnf_mean, a.lnf_rstd, xL, m.net.norm_f_w, m.net.norm_f_b, N);

  // LM head, loss and the head's backward, chunk by chunk so (rows, V) logits stay small
  int64_t n_valid = 0;
  for (int64_t i = 0; i < N; i++) n_valid += targets[i] >= 0;
  const float dscale = opts.loss_scale / (float)n_valid;
  const float alpha = teacher ? opts.kd_alpha : 0.0f;
  const float tau = teacher ? opts.kd_tau : 1.0f;
  const float* Wh = param(m, m.net.head);
  float* dWh = grad(m, m.net.head);
  const int64_t chunk = head_chunk(N, V);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rows = std::min(chunk, N - r0);
    matmul_forward(a.logits, a.lnf + r0 * C, Wh, nullptr, rows, C, V, false, stats);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      float* row = a.logits + r * V;
      const RowLoss rl = loss_row(row, row, targets[r0 + r], teacher ? teacher + (r0 + r) * V : nullptr, alpha, tau,
                                  dscale, V);
      a.ce[r0 + r] = rl.ce;
      a.kl[r0 + r] = rl.kl;
    }
    matmul_backward(a.dln + r0 * C, dWh, nullptr, a.logits, a.lnf + r0 * C, Wh, rows, C, V, stats);
  }
  double ce = 0.0, kl = 0.0;
  for (int64_t i = 0; i < N; i++) {
    ce += a.ce[i];
    kl += a.kl[i];
  }
  sieve_loss out{};
  out.tokens = n_valid;
  out.ce = ce / (double)n_valid;
  out.kl = kl / (double)n_valid;
  out.loss = teacher ? (1.0 - alpha) * out.ce + (double)alpha * tau * tau * out.kl : out.ce;
  check_cancel(m);

  // backward
  std::fill(a.dx, a.dx + N * C, 0.0f);
  norm_backward(m, a.dx, a.dln, xL, a.lnf_mean, a.lnf_rstd, m.net.norm_f_w, m.net.norm_f_b, N);
  for (int64_t l = m.net.L - 1; l >= 0; l--) {
    block_backward(m, train_io(m, l), l, B, T, stats, &m.timing.attention_seconds);
    check_cancel(m);
  }
  embedding_backward(grad(m, m.net.tok_emb), grad(m, m.net.pos_emb), a.dx, inputs, B, T, C, V);

  m.timing.total_seconds += now_seconds() - t_start;
  m.timing.tokens += N;
  return out;
}

float optimize(CpuModel& m, const sieve_optim_opts& o, int64_t t_step) {
  const double t_start = now_seconds();
  float* g = m.flat(SIEVE_BUFFER_GRADS);
  const int64_t P = m.net.num_params;
  const double norm = global_norm(g, P);
  // Judged as the float the caller receives, so "skipped" means the same on both sides (a
  // double norm beyond FLT_MAX reports as inf).
  if (o.skip_nonfinite && !std::isfinite((float)norm)) {
    m.timing.optimizer_seconds += now_seconds() - t_start;
    return (float)norm;
  }
  // moments only once some rule keeps them (a model of frozen tensors never allocates them)
  bool moments = false;
  for (const TensorEntry& t : m.net.tensors) moments = moments || update_rule_uses_moments(t.rule.kind);
  float* mom = moments ? m.flat(SIEVE_BUFFER_ADAM_M) : nullptr;
  float* var = moments ? m.flat(SIEVE_BUFFER_ADAM_V) : nullptr;
  if (o.grad_clip > 0.0f) {
    const double coef = (double)o.grad_clip / (norm + 1e-6);
    if (coef < 1.0) {
      const float s = (float)coef;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < P; i++) g[i] *= s;
    }
  }
  for (const TensorEntry& t : m.net.tensors)
    if (t.hook.kind != SIEVE_HOOK_NONE)
      grad_hook_apply(g + t.offset, m.params.data + t.offset, mask(m, t), t.hook, t.size);
  const StepHyper hp{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, t_step};
  for (const TensorEntry& t : m.net.tensors)
    update_rule_apply(m.params.data + t.offset, moments ? mom + t.offset : nullptr, moments ? var + t.offset : nullptr,
                      g + t.offset, mask(m, t), t.decay != 0, hp, t.rule, t.size);
  m.timing.optimizer_seconds += now_seconds() - t_start;
  return (float)norm;
}

// ---------------------------------------------------------------- inference

void infer_chunks(CpuModel& m, float* out_nll, float* out_logits, const int32_t* tokens, int64_t B, int64_t T,
                  sieve_progress_fn progress, void* user) {
  prepare_weights(m);
  const int64_t C = m.net.C, V = m.net.V;
  // windows per chunk: about 4096 tokens, enough rows to keep the GEMMs efficient
  const int64_t Bc = std::max<int64_t>(1, std::min<int64_t>(B, 4096 / T));
  const int64_t Nc = Bc * T;
  const int64_t threads = omp_get_max_threads();
  const int64_t hchunk = out_nll ? head_chunk(Nc, V) : 0;  // neither output: the blocks only (input_hessians)

  Carver measure{nullptr};
  auto carve = [&](Carver& cv, BlockIO& io, float*& logits) {
    io.x_in = io.x_mid = io.x_out = cv.take(Nc * C);
    io.ln1 = io.ln2 = cv.take(Nc * C);
    io.ln1_mean = io.ln2_mean = cv.take(Nc);
    io.ln1_rstd = io.ln2_rstd = cv.take(Nc);
    io.qkv = cv.take(Nc * 3 * C);
    io.att = nullptr;
    io.atty = cv.take(Nc * C);
    io.fc = cv.take(Nc * m.net.FC);
    io.act = cv.take(Nc * m.net.H);
    io.scratch = cv.take(threads * T * T);
    io.slorb_xp = cv.take(Nc * m.slorb.rmax);
    io.slorb_packed = false;
    logits = cv.take(hchunk * V);
  };
  BlockIO io{};
  float* logits = nullptr;
  carve(measure, io, logits);
  if (m.infer_mem.size < measure.used) m.infer_mem.allocate(measure.used, 0.0f);
  Carver cv{m.infer_mem.data};
  carve(cv, io, logits);

  for (int64_t b0 = 0; b0 < B; b0 += Bc) {
    check_cancel(m);
    const int64_t bc = std::min(Bc, B - b0), N = bc * T;
    const int32_t* tok = tokens + b0 * T;
    embedding_forward(io.x_in, tok, param(m, m.net.tok_emb), param(m, m.net.pos_emb), bc, T, C);
    for (int64_t l = 0; l < m.net.L; l++) {
      block_forward(m, io, l, bc, T, nullptr, nullptr);
      check_cancel(m);
    }
    norm_forward(m, io.ln1, io.ln1_mean, io.ln1_rstd, io.x_in, m.net.norm_f_w, m.net.norm_f_b, N);
    const float* Wh = param(m, m.net.head);
    if (out_logits) {
      matmul_forward(out_logits + b0 * T * V, io.ln1, Wh, nullptr, N, C, V, false, nullptr);
    } else if (out_nll) {
      for (int64_t r0 = 0; r0 < N; r0 += hchunk) {
        const int64_t rows = std::min(hchunk, N - r0);
        matmul_forward(logits, io.ln1 + r0 * C, Wh, nullptr, rows, C, V, false, nullptr);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
          const int64_t b = (r0 + r) / T, t = (r0 + r) % T;
          if (t == T - 1) continue;  // the last token of a window predicts nothing inside it
          const int32_t target = tok[b * T + t + 1];
          out_nll[(b0 + b) * (T - 1) + t] = loss_row(nullptr, logits + r * V, target, nullptr, 0.0f, 1.0f, 0.0f, V).ce;
        }
      }
    }
    if (progress) progress(user, b0 + bc, B);
  }
}

}  // namespace

// ---------------------------------------------------------------- the passes, as the core calls them

sieve_loss CpuModel::forward_backward(const int32_t* inputs, const int32_t* targets, const float* teacher,
                                      const sieve_loss_opts& opts, int64_t B, int64_t T) {
  ThreadScope scope(model.threads);
  return train_step(*this, inputs, targets, teacher, opts, B, T);
}

float CpuModel::optimizer_step(const sieve_optim_opts& opts, int64_t t) {
  ThreadScope scope(model.threads);
  return optimize(*this, opts, t);
}

void CpuModel::infer(float* nll, float* logits, const int32_t* tokens, int64_t B, int64_t T,
                     sieve_progress_fn progress, void* user) {
  ThreadScope scope(model.threads);
  infer_chunks(*this, nll, logits, tokens, B, T, progress, user);
}

// ---------------------------------------------------------------- quantization

namespace {

constexpr int64_t kGramRows = 256;  // positions per float32 Gram matrix (sieve.h)

}  // namespace

void CpuModel::input_hessians(double* out, const int64_t* tensors, int64_t n, const int32_t* tokens, int64_t B,
                              int64_t T, sieve_progress_fn progress, void* user) {
  ThreadScope scope(model.threads);
  // one accumulator per distinct linear layer (LLaMA's gate and up share theirs)
  const LinearGroups groups(net, tensors, n);
  const std::vector<const Linear*>& lins = groups.lins;
  const std::vector<int64_t>& slot = groups.slot;
  std::vector<std::vector<double>> sums;
  int64_t max_ic = 0;
  for (const Linear* lin : lins) sums.emplace_back(lin->IC * lin->IC, 0.0), max_ic = std::max(max_ic, lin->IC);
  std::vector<float> gram(max_ic * max_ic);
  {
    const TapScope tap(linear_tap, [&](const Linear& lin, const float* inp, int64_t N) {
      const int64_t g = groups.find(lin);
      if (g < 0) return;
      std::vector<double>& acc = sums[g];
      const int64_t IC = lin.IC;
      for (int64_t r0 = 0; r0 < N; r0 += kGramRows) {
        const int64_t rows = std::min(kGramRows, N - r0);
        sgemm(true, false, IC, IC, rows, 1.0f, inp + r0 * IC, IC, inp + r0 * IC, IC, 0.0f, gram.data(), IC, nullptr);
        // the upper triangle, mirrored, so the result is exactly symmetric
#pragma omp parallel for schedule(static)
        for (int64_t a = 0; a < IC; a++)
          for (int64_t b = a; b < IC; b++) acc[a * IC + b] += (double)gram[a * IC + b];
      }
    });
    infer_chunks(*this, nullptr, nullptr, tokens, B, T, progress, user);
  }
  for (int64_t i = 0; i < n; i++) {
    const std::vector<double>& acc = sums[slot[i]];
    const int64_t IC = lins[slot[i]]->IC;
    double* o = out;
    for (int64_t j = 0; j < i; j++) {
      const int64_t ic = net.tensors[tensors[j]].shape[1];
      o += ic * ic;
    }
    for (int64_t a = 0; a < IC; a++)
      for (int64_t b = a; b < IC; b++) o[a * IC + b] = o[b * IC + a] = acc[a * IC + b];
  }
}

void CpuModel::post_quant_integral(double* pqi, double* losses, const int64_t* tensors, int64_t n,
                                   const float* deltas, const double* points, const double* weights, int64_t K,
                                   const int32_t* inputs, const int32_t* targets, int64_t M, int64_t T, int64_t micro,
                                   sieve_progress_fn progress, void* user) {
  ThreadScope scope(model.threads);
  // the listed tensors' parameters, restored bit for bit however this ends
  std::vector<int64_t> offsets(n + 1, 0);
  for (int64_t i = 0; i < n; i++) offsets[i + 1] = offsets[i] + net.tensors[tensors[i]].size;
  const int64_t D = offsets[n];
  std::vector<float> saved(D);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    std::copy(params.data + t.offset, params.data + t.offset + t.size, saved.data() + offsets[i]);
  }
  struct Restore {
    CpuModel& m;
    const std::vector<float>& saved;
    const std::vector<int64_t>& offsets;
    const int64_t* tensors;
    int64_t n;
    ~Restore() {
      for (int64_t i = 0; i < n; i++) {
        const TensorEntry& t = m.net.tensors[tensors[i]];
        std::copy(saved.data() + offsets[i], saved.data() + offsets[i + 1], m.params.data + t.offset);
      }
    }
  } restore{*this, saved, offsets, tensors, n};

  int64_t total_valid = 0;
  for (int64_t i = 0; i < M * T; i++) total_valid += targets[i] >= 0;
  std::fill(pqi, pqi + D, 0.0);
  int64_t done = 0;
  const int64_t total = (K + 2) * M;
  // F(w + s delta) (and, with gradient, its gradient in the grads buffer)
  auto evaluate = [&](double s, bool gradient) -> double {
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = net.tensors[tensors[i]];
      const float* w0 = saved.data() + offsets[i];
      const float* d = deltas + offsets[i];
      float* p = params.data + t.offset;
      const float sf = (float)s;
      for (int64_t j = 0; j < t.size; j++) p[j] = w0[j] + sf * d[j];
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
    const float* g = grads.data;
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = net.tensors[tensors[i]];
      const float* d = deltas + offsets[i];
      double* out = pqi + offsets[i];
      const double wk = weights[k];
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < t.size; j++) out[j] += wk * (double)d[j] * (double)g[t.offset + j];
    }
  }
}

}  // namespace sieve::cpu
