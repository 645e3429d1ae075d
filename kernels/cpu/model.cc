// model.cc — the transformer: config checks, the tensor table, initialisation, the training
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

#include "gemm.h"
#include "ops.h"
#include "rng.h"

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

// ---------------------------------------------------------------- config and tensor table

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;
constexpr int64_t kMaxParams = (int64_t(1) << 31) - 1;

bool gpt2(const sieve_model& m) { return m.cfg.family == SIEVE_FAMILY_GPT2; }

}  // namespace

void config_check(const sieve_config& c) {
  SIEVE_CHECK(c.family == SIEVE_FAMILY_GPT2 || c.family == SIEVE_FAMILY_LLAMA,
              "unknown model family %d: expected gpt2 (%d) or llama (%d)", (int)c.family, SIEVE_FAMILY_GPT2,
              SIEVE_FAMILY_LLAMA);
  SIEVE_CHECK(c.layers >= 1, "layers must be at least 1, got %lld", (long long)c.layers);
  SIEVE_CHECK(c.dim >= 1, "dim must be at least 1, got %lld", (long long)c.dim);
  SIEVE_CHECK(c.heads >= 1, "heads must be at least 1, got %lld", (long long)c.heads);
  SIEVE_CHECK(c.dim % c.heads == 0, "heads (%lld) must divide dim (%lld)", (long long)c.heads, (long long)c.dim);
  SIEVE_CHECK(c.context >= 1, "context must be at least 1, got %lld", (long long)c.context);
  SIEVE_CHECK(c.vocab >= 2, "vocab must be at least 2, got %lld", (long long)c.vocab);
  SIEVE_CHECK(c.mlp_hidden >= 1, "mlp_hidden must be at least 1, got %lld", (long long)c.mlp_hidden);
  SIEVE_CHECK(c.layers <= 4096 && c.dim <= kMaxDim && c.context <= kMaxDim && c.vocab <= kMaxDim &&
                  c.mlp_hidden <= kMaxDim,
              "config too large: layers <= 4096 and dim, context, vocab, mlp_hidden <= %lld", (long long)kMaxDim);
  SIEVE_CHECK(std::isfinite(c.norm_eps) && c.norm_eps > 0.0f, "norm_eps must be a finite number > 0, got %g",
              (double)c.norm_eps);
  if (c.family == SIEVE_FAMILY_LLAMA) {
    SIEVE_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0.0f,
                "rope_theta must be a finite number > 0 for llama, got %g", (double)c.rope_theta);
    SIEVE_CHECK((c.dim / c.heads) % 2 == 0, "head size dim/heads = %lld must be even for RoPE (llama)",
                (long long)(c.dim / c.heads));
  } else {
    SIEVE_CHECK(c.rope_theta == 0.0f, "rope_theta must be unset (0) for gpt2, which has no RoPE; got %g",
                (double)c.rope_theta);
  }
  const int64_t C = c.dim, H = c.mlp_hidden, V = c.vocab;
  const int64_t per_layer = c.family == SIEVE_FAMILY_GPT2 ? 4 * C + 3 * C * C + 3 * C + C * C + C + 2 * H * C + H + C
                                                          : 2 * C + 4 * C * C + 3 * H * C;
  const int64_t global = c.family == SIEVE_FAMILY_GPT2 ? V * C + c.context * C + 2 * C : 2 * V * C + C;
  const double total = (double)per_layer * (double)c.layers + (double)global;
  SIEVE_CHECK(total <= (double)kMaxParams, "the model would have %.0f parameters; at most %lld are supported", total,
              (long long)kMaxParams);
}

void model_build(sieve_model& m, const sieve_config& cfg) {
  config_check(cfg);
  m.cfg = cfg;
  m.C = cfg.dim;
  m.NH = cfg.heads;
  m.HS = cfg.dim / cfg.heads;
  m.H = cfg.mlp_hidden;
  m.V = cfg.vocab;
  m.L = cfg.layers;
  m.FC = gpt2(m) ? m.H : 2 * m.H;
  const int64_t C = m.C, H = m.H, V = m.V;

  auto add = [&](const std::string& name, int64_t d0, int64_t d1, int32_t kind, int32_t scope) {
    TensorEntry t;
    t.name = name;
    t.offset = m.num_params;
    t.ndim = d1 > 0 ? 2 : 1;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.size = d1 > 0 ? d0 * d1 : d0;
    t.kind = kind;
    t.scope = scope;
    t.decay = t.ndim == 2 ? 1 : 0;  // matrices only: linear, embeddings, head
    t.rule.kind = SIEVE_RULE_ADAMW;
    m.num_params += t.size;
    m.by_name[name] = (int64_t)m.tensors.size();
    m.tensors.push_back(std::move(t));
    return (int64_t)m.tensors.size() - 1;
  };
  auto linear = [&](const std::string& name, int64_t OC, int64_t IC, int32_t scope, bool bias) {
    Linear lin;
    lin.first = add(name + ".weight", OC, IC, SIEVE_KIND_LINEAR, scope);
    lin.count = 1;
    lin.bias = bias ? add(name + ".bias", OC, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE) : -1;
    lin.OC = OC;
    lin.IC = IC;
    return lin;
  };
  const bool g = gpt2(m);

  m.tok_emb = add("tok_emb.weight", V, C, SIEVE_KIND_EMBEDDING, SIEVE_SCOPE_NONE);
  if (g) m.pos_emb = add("pos_emb.weight", cfg.context, C, SIEVE_KIND_EMBEDDING, SIEVE_SCOPE_NONE);
  for (int64_t l = 0; l < m.L; l++) {
    const std::string p = "blocks." + std::to_string(l) + ".";
    LayerLinears ll;
    ll.norm1_w = add(p + "norm1.weight", C, 0, SIEVE_KIND_NORM, SIEVE_SCOPE_NONE);
    if (g) ll.norm1_b = add(p + "norm1.bias", C, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE);
    ll.qkv = linear(p + "attn.qkv", 3 * C, C, SIEVE_SCOPE_ATTN, g);
    ll.out = linear(p + "attn.out", C, C, SIEVE_SCOPE_ATTN, g);
    ll.norm2_w = add(p + "norm2.weight", C, 0, SIEVE_KIND_NORM, SIEVE_SCOPE_NONE);
    if (g) ll.norm2_b = add(p + "norm2.bias", C, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE);
    if (g) {
      ll.up = linear(p + "mlp.fc", H, C, SIEVE_SCOPE_FFN, true);
      ll.down = linear(p + "mlp.proj", C, H, SIEVE_SCOPE_FFN, true);
    } else {
      // gate and up are adjacent so the forward multiplies them as one (2H, C) matrix
      ll.up = linear(p + "mlp.gate", H, C, SIEVE_SCOPE_FFN, false);
      add(p + "mlp.up.weight", H, C, SIEVE_KIND_LINEAR, SIEVE_SCOPE_FFN);
      ll.up.count = 2;
      ll.up.OC = 2 * H;
      ll.down = linear(p + "mlp.down", C, H, SIEVE_SCOPE_FFN, false);
    }
    m.layers.push_back(ll);
  }
  m.norm_f_w = add("norm_f.weight", C, 0, SIEVE_KIND_NORM, SIEVE_SCOPE_NONE);
  if (g) m.norm_f_b = add("norm_f.bias", C, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE);
  m.head = g ? m.tok_emb : add("lm_head.weight", V, C, SIEVE_KIND_HEAD, SIEVE_SCOPE_NONE);

  m.params.allocate(m.num_params, 0.0f);
  if (!g) {
    m.rope_cos.resize(cfg.context * (m.HS / 2));
    m.rope_sin.resize(cfg.context * (m.HS / 2));
    rope_tables(m.rope_cos.data(), m.rope_sin.data(), cfg.rope_theta, cfg.context, m.HS);
  }
}

// ---------------------------------------------------------------- init and buffers

void model_init(sieve_model& m, uint64_t seed) {
  const double std_base = 0.02;
  const double std_resid = 0.02 / std::sqrt(2.0 * (double)m.L);
  for (const TensorEntry& t : m.tensors) {
    float* w = m.params.data + t.offset;
    if (t.kind == SIEVE_KIND_NORM) {
      std::fill(w, w + t.size, 1.0f);
      continue;
    }
    if (t.kind == SIEVE_KIND_BIAS) {
      std::fill(w, w + t.size, 0.0f);
      continue;
    }
    const bool resid = t.name.find(".attn.out.weight") != std::string::npos ||
                       t.name.find(".mlp.proj.weight") != std::string::npos ||
                       t.name.find(".mlp.down.weight") != std::string::npos;
    const double sd = resid ? std_resid : std_base;
    const uint64_t key = stream_key(seed, t.name);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < t.size; i++) w[i] = (float)(sd * stream_normal(key, (uint64_t)i));
  }
}

float* model_buffer(sieve_model& m, int32_t which) {
  switch (which) {
    case SIEVE_BUFFER_PARAMS: return m.params.data;
    case SIEVE_BUFFER_GRADS:
      if (m.grads.empty()) m.grads.allocate(m.num_params, 0.0f);
      return m.grads.data;
    case SIEVE_BUFFER_MASKS:
      if (m.masks.empty()) m.masks.allocate(m.num_params, 1.0f);
      return m.masks.data;
    case SIEVE_BUFFER_ADAM_M:
      if (m.adam_m.empty()) m.adam_m.allocate(m.num_params, 0.0f);
      return m.adam_m.data;
    case SIEVE_BUFFER_ADAM_V:
      if (m.adam_v.empty()) m.adam_v.allocate(m.num_params, 0.0f);
      return m.adam_v.data;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown buffer %d: expected params (0), grads (1), masks (2), m (3) or v (4)",
       (int)which);
}

// ---------------------------------------------------------------- seams

void model_set_transform(sieve_model& m, int64_t idx, int32_t kind, const float* params, int64_t n) {
  TensorEntry& t = m.tensors[idx];
  SIEVE_CHECK(t.kind == SIEVE_KIND_LINEAR,
              "tensor '%s' is not a linear weight: only linear weights take a weight transform", t.name.c_str());
  transform_validate(kind, params, n, t.name);
  if (transform_uses_mask(kind)) model_buffer(m, SIEVE_BUFFER_MASKS);
  if (!transform_is_identity(kind) && m.wt.empty()) m.wt.allocate(m.num_params, 0.0f);
  t.transform.kind = kind;
  t.transform.params.assign(params, params + n);
  transform_setup(t.transform, m.params.data + t.offset, t.size);
}

void model_set_grad_hook(sieve_model& m, int64_t idx, int32_t kind, const float* params, int64_t n) {
  TensorEntry& t = m.tensors[idx];
  grad_hook_validate(kind, params, n, t.name);
  if (grad_hook_uses_mask(kind)) model_buffer(m, SIEVE_BUFFER_MASKS);
  t.hook.kind = kind;
  t.hook.params.assign(params, params + n);
}

void model_set_update_rule(sieve_model& m, int64_t idx, int32_t kind, const float* params, int64_t n) {
  TensorEntry& t = m.tensors[idx];
  update_rule_validate(kind, params, n, t.name);
  if (update_rule_uses_mask(kind)) model_buffer(m, SIEVE_BUFFER_MASKS);
  t.rule.kind = kind;
  t.rule.params.assign(params, params + n);
}

// ---------------------------------------------------------------- helpers of the passes

namespace {

void check_cancel(sieve_model& m) {
  if (m.cancel.load(std::memory_order_relaxed)) fail(SIEVE_E_CANCELLED, "cancelled");
}

const float* param(const sieve_model& m, int64_t idx) {
  return idx < 0 ? nullptr : m.params.data + m.tensors[idx].offset;
}
float* grad(sieve_model& m, int64_t idx) { return idx < 0 ? nullptr : m.grads.data + m.tensors[idx].offset; }

bool linear_transformed(const sieve_model& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (!transform_is_identity(m.tensors[lin.first + i].transform.kind)) return true;
  return false;
}

bool linear_straight_through(const sieve_model& m, const Linear& lin) {
  for (int64_t i = 0; i < lin.count; i++)
    if (!transform_is_straight_through(m.tensors[lin.first + i].transform.kind)) return false;
  return true;
}

// The weight the forward multiplies by: W, or W~ when a transform is set.
const float* linear_weight(const sieve_model& m, const Linear& lin) {
  const int64_t off = m.tensors[lin.first].offset;
  return linear_transformed(m, lin) ? m.wt.data + off : m.params.data + off;
}

// W~ = f(W) for every transformed linear layer, once per pass.
void prepare_weights(sieve_model& m) {
  for (const LayerLinears& ll : m.layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down}) {
      if (!linear_transformed(m, *lin)) continue;
      for (int64_t i = 0; i < lin->count; i++) {
        const TensorEntry& t = m.tensors[lin->first + i];
        transform_forward(m.wt.data + t.offset, m.params.data + t.offset,
                          m.masks.empty() ? nullptr : m.masks.data + t.offset, t.transform, t.size);
      }
    }
}

// Backward of a linear layer through its transform: dinp = dout W~, and the weight
// gradient reaches W straight through (accumulated in place) or via transform_backward.
void linear_backward(sieve_model& m, const Linear& lin, float* dinp, const float* dout, const float* inp,
                     int64_t N, float* dw_scratch, GemmStats* stats) {
  const float* W = linear_weight(m, lin);
  const bool ste = linear_straight_through(m, lin);
  float* dW = ste ? grad(m, lin.first) : dw_scratch;
  if (!ste) std::fill(dW, dW + lin.OC * lin.IC, 0.0f);
  matmul_backward(dinp, dW, grad(m, lin.bias), dout, inp, W, N, lin.IC, lin.OC, stats);
  if (ste) return;
  for (int64_t i = 0; i < lin.count; i++) {
    const TensorEntry& t = m.tensors[lin.first + i];
    const int64_t rel = t.offset - m.tensors[lin.first].offset;
    transform_backward(m.grads.data + t.offset, dW + rel, m.params.data + t.offset,
                       m.masks.empty() ? nullptr : m.masks.data + t.offset, t.transform, t.size);
  }
}

// Rows of logits formed at once by the LM head: bounds the (rows, V) buffer.
int64_t head_chunk(int64_t N, int64_t V) {
  const int64_t rows = std::max<int64_t>(256, (int64_t(1) << 22) / V);
  return std::min(N, rows);
}

int64_t max_linear_size(const sieve_model& m) {
  int64_t n = 0;
  for (const LayerLinears& ll : m.layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down}) n = std::max(n, lin->OC * lin->IC);
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

void layout_activations(Activations& a, Carver& cv, const sieve_model& m, int64_t B, int64_t T, int64_t threads) {
  const int64_t N = B * T, L = m.L, C = m.C;
  a.B = B;
  a.T = T;
  a.x = cv.take((L + 1) * N * C);
  a.xmid = cv.take(L * N * C);
  a.ln1 = cv.take(L * N * C);
  a.ln1_mean = cv.take(L * N);
  a.ln1_rstd = cv.take(L * N);
  a.qkv = cv.take(L * N * 3 * C);
  a.att = cv.take(L * B * m.NH * T * T);
  a.atty = cv.take(L * N * C);
  a.ln2 = cv.take(L * N * C);
  a.ln2_mean = cv.take(L * N);
  a.ln2_rstd = cv.take(L * N);
  a.fc = cv.take(L * N * m.FC);
  a.act = cv.take(L * N * m.H);
  a.lnf = cv.take(N * C);
  a.lnf_mean = cv.take(N);
  a.lnf_rstd = cv.take(N);
  a.dx = cv.take(N * C);
  a.dln = cv.take(N * C);
  a.datty = cv.take(N * C);
  a.dqkv = cv.take(N * 3 * C);
  a.dfc = cv.take(N * m.FC);
  a.dact = cv.take(N * m.H);
  a.logits = cv.take(head_chunk(N, m.V) * m.V);
  a.att_scratch = cv.take(threads * T * T);
  a.ce = cv.take(N);
  a.kl = cv.take(N);
  a.dw_scratch = cv.take(max_linear_size(m));
}

void ensure_activations(sieve_model& m, int64_t B, int64_t T) {
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

// The buffers one block reads and writes. Training gives each layer its own slices;
// inference passes the same buffers for every layer (x_in = x_mid = x_out: the residual
// stream is updated in place).
struct BlockIO {
  float *x_in, *x_mid, *x_out;
  float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *ln2, *ln2_mean, *ln2_rstd, *fc, *act, *scratch;
};

void norm_forward(const sieve_model& m, float* out, float* mean, float* rstd, const float* x, int64_t w, int64_t b,
                  int64_t N) {
  if (gpt2(m))
    layernorm_forward(out, mean, rstd, x, param(m, w), param(m, b), m.cfg.norm_eps, N, m.C);
  else
    rmsnorm_forward(out, rstd, x, param(m, w), m.cfg.norm_eps, N, m.C);
}

void norm_backward(sieve_model& m, float* dx, const float* dout, const float* x, const float* mean, const float* rstd,
                   int64_t w, int64_t b, int64_t N) {
  if (gpt2(m))
    layernorm_backward(dx, grad(m, w), grad(m, b), dout, x, mean, rstd, param(m, w), N, m.C);
  else
    rmsnorm_backward(dx, grad(m, w), dout, x, rstd, param(m, w), N, m.C);
}

void block_forward(sieve_model& m, const BlockIO& io, int64_t l, int64_t B, int64_t T, GemmStats* stats,
                   double* att_seconds) {
  const LayerLinears& ll = m.layers[l];
  const int64_t N = B * T, C = m.C;
  // attention: x_mid = x_in + out(attention(qkv(norm1(x_in))))
  norm_forward(m, io.ln1, io.ln1_mean, io.ln1_rstd, io.x_in, ll.norm1_w, ll.norm1_b, N);
  matmul_forward(io.qkv, io.ln1, linear_weight(m, ll.qkv), param(m, ll.qkv.bias), N, C, 3 * C, false, stats);
  const double t0 = now_seconds();
  if (!gpt2(m)) rope_forward(io.qkv, m.rope_cos.data(), m.rope_sin.data(), B, T, C, m.NH);
  attention_forward(io.atty, io.att, io.scratch, io.qkv, B, T, C, m.NH);
  if (att_seconds) *att_seconds += now_seconds() - t0;
  residual_bias_forward(io.x_mid, io.x_in, param(m, ll.out.bias), N, C);
  matmul_forward(io.x_mid, io.atty, linear_weight(m, ll.out), nullptr, N, C, C, true, stats);
  // MLP: x_out = x_mid + down(act(up(norm2(x_mid))))
  norm_forward(m, io.ln2, io.ln2_mean, io.ln2_rstd, io.x_mid, ll.norm2_w, ll.norm2_b, N);
  matmul_forward(io.fc, io.ln2, linear_weight(m, ll.up), param(m, ll.up.bias), N, C, m.FC, false, stats);
  if (gpt2(m))
    gelu_forward(io.act, io.fc, N * m.H);
  else
    swiglu_forward(io.act, io.fc, N, m.H);
  residual_bias_forward(io.x_out, io.x_mid, param(m, ll.down.bias), N, C);
  matmul_forward(io.x_out, io.act, linear_weight(m, ll.down), nullptr, N, m.H, C, true, stats);
}

// On entry a.dx is d loss / d x_out of block l; on exit it is d loss / d x_in.
void block_backward(sieve_model& m, const BlockIO& io, int64_t l, int64_t B, int64_t T, GemmStats* stats,
                    double* att_seconds) {
  Activations& a = m.acts;
  const LayerLinears& ll = m.layers[l];
  const int64_t N = B * T, C = m.C;
  // MLP
  linear_backward(m, ll.down, a.dact, a.dx, io.act, N, a.dw_scratch, stats);
  if (gpt2(m))
    gelu_backward(a.dfc, a.dact, io.fc, N * m.H);
  else
    swiglu_backward(a.dfc, a.dact, io.fc, N, m.H);
  linear_backward(m, ll.up, a.dln, a.dfc, io.ln2, N, a.dw_scratch, stats);
  norm_backward(m, a.dx, a.dln, io.x_mid, io.ln2_mean, io.ln2_rstd, ll.norm2_w, ll.norm2_b, N);
  // attention
  linear_backward(m, ll.out, a.datty, a.dx, io.atty, N, a.dw_scratch, stats);
  const double t0 = now_seconds();
  attention_backward(a.dqkv, a.att_scratch, a.datty, io.qkv, io.att, B, T, C, m.NH);
  if (!gpt2(m)) rope_backward(a.dqkv, m.rope_cos.data(), m.rope_sin.data(), B, T, C, m.NH);
  if (att_seconds) *att_seconds += now_seconds() - t0;
  linear_backward(m, ll.qkv, a.dln, a.dqkv, io.ln1, N, a.dw_scratch, stats);
  norm_backward(m, a.dx, a.dln, io.x_in, io.ln1_mean, io.ln1_rstd, ll.norm1_w, ll.norm1_b, N);
}

BlockIO train_io(sieve_model& m, int64_t l) {
  Activations& a = m.acts;
  const int64_t N = a.B * a.T, C = m.C;
  BlockIO io;
  io.x_in = a.x + l * N * C;
  io.x_out = a.x + (l + 1) * N * C;
  io.x_mid = a.xmid + l * N * C;
  io.ln1 = a.ln1 + l * N * C;
  io.ln1_mean = a.ln1_mean + l * N;
  io.ln1_rstd = a.ln1_rstd + l * N;
  io.qkv = a.qkv + l * N * 3 * C;
  io.att = a.att + l * a.B * m.NH * a.T * a.T;
  io.atty = a.atty + l * N * C;
  io.ln2 = a.ln2 + l * N * C;
  io.ln2_mean = a.ln2_mean + l * N;
  io.ln2_rstd = a.ln2_rstd + l * N;
  io.fc = a.fc + l * N * m.FC;
  io.act = a.act + l * N * m.H;
  io.scratch = a.att_scratch;
  return io;
}

}  // namespace

// ---------------------------------------------------------------- training

sieve_loss model_forward_backward(sieve_model& m, const int32_t* inputs, const int32_t* targets, const float* teacher,
                                  const sieve_loss_opts& opts, int64_t B, int64_t T) {
  const double t_start = now_seconds();
  model_buffer(m, SIEVE_BUFFER_GRADS);
  ensure_activations(m, B, T);
  prepare_weights(m);
  Activations& a = m.acts;
  GemmStats* stats = &m.gemm_stats;
  const int64_t N = B * T, C = m.C, V = m.V;
  check_cancel(m);

  // forward
  embedding_forward(a.x, inputs, param(m, m.tok_emb), param(m, m.pos_emb), B, T, C);
  for (int64_t l = 0; l < m.L; l++) {
    block_forward(m, train_io(m, l), l, B, T, stats, &m.timers.attention_seconds);
    check_cancel(m);
  }
  const float* xL = a.x + m.L * N * C;
  norm_forward(m, a.lnf, a.lnf_mean, a.lnf_rstd, xL, m.norm_f_w, m.norm_f_b, N);

  // LM head, loss and the head's backward, chunk by chunk so (rows, V) logits stay small
  int64_t n_valid = 0;
  for (int64_t i = 0; i < N; i++) n_valid += targets[i] >= 0;
  const float dscale = opts.loss_scale / (float)n_valid;
  const float alpha = teacher ? opts.kd_alpha : 0.0f;
  const float tau = teacher ? opts.kd_tau : 1.0f;
  const float* Wh = param(m, m.head);
  float* dWh = grad(m, m.head);
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
  norm_backward(m, a.dx, a.dln, xL, a.lnf_mean, a.lnf_rstd, m.norm_f_w, m.norm_f_b, N);
  for (int64_t l = m.L - 1; l >= 0; l--) {
    block_backward(m, train_io(m, l), l, B, T, stats, &m.timers.attention_seconds);
    check_cancel(m);
  }
  embedding_backward(grad(m, m.tok_emb), grad(m, m.pos_emb), a.dx, inputs, B, T, C, V);

  m.timers.total_seconds += now_seconds() - t_start;
  m.timers.tokens += N;
  return out;
}

float model_optimizer_step(sieve_model& m, const sieve_optim_opts& o) {
  const double t_start = now_seconds();
  float* g = model_buffer(m, SIEVE_BUFFER_GRADS);
  float* mom = model_buffer(m, SIEVE_BUFFER_ADAM_M);
  float* var = model_buffer(m, SIEVE_BUFFER_ADAM_V);
  const int64_t P = m.num_params;
  const double norm = global_norm(g, P);
  if (o.grad_clip > 0.0f) {
    const double coef = (double)o.grad_clip / (norm + 1e-6);
    if (coef < 1.0) {
      const float s = (float)coef;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < P; i++) g[i] *= s;
    }
  }
  for (const TensorEntry& t : m.tensors)
    if (t.hook.kind != SIEVE_HOOK_NONE)
      grad_hook_apply(g + t.offset, m.params.data + t.offset, m.masks.empty() ? nullptr : m.masks.data + t.offset,
                      t.hook, t.size);
  StepHyper hp{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, m.step + 1};
  for (const TensorEntry& t : m.tensors)
    update_rule_apply(m.params.data + t.offset, mom + t.offset, var + t.offset, g + t.offset,
                      m.masks.empty() ? nullptr : m.masks.data + t.offset, t.decay != 0, hp, t.rule, t.size);
  m.step += 1;
  m.timers.optimizer_seconds += now_seconds() - t_start;
  return (float)norm;
}

// ---------------------------------------------------------------- inference

void model_infer(sieve_model& m, float* out_nll, float* out_logits, const int32_t* tokens, int64_t B, int64_t T,
                 sieve_progress_fn progress, void* user) {
  prepare_weights(m);
  const int64_t C = m.C, V = m.V;
  // windows per chunk: about 4096 tokens, enough rows to keep the GEMMs efficient
  const int64_t Bc = std::max<int64_t>(1, std::min<int64_t>(B, 4096 / T));
  const int64_t Nc = Bc * T;
  const int64_t threads = omp_get_max_threads();
  const int64_t hchunk = out_nll ? head_chunk(Nc, V) : 0;

  Carver measure{nullptr};
  auto carve = [&](Carver& cv, BlockIO& io, float*& logits) {
    io.x_in = io.x_mid = io.x_out = cv.take(Nc * C);
    io.ln1 = io.ln2 = cv.take(Nc * C);
    io.ln1_mean = io.ln2_mean = cv.take(Nc);
    io.ln1_rstd = io.ln2_rstd = cv.take(Nc);
    io.qkv = cv.take(Nc * 3 * C);
    io.att = nullptr;
    io.atty = cv.take(Nc * C);
    io.fc = cv.take(Nc * m.FC);
    io.act = cv.take(Nc * m.H);
    io.scratch = cv.take(threads * T * T);
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
    embedding_forward(io.x_in, tok, param(m, m.tok_emb), param(m, m.pos_emb), bc, T, C);
    for (int64_t l = 0; l < m.L; l++) {
      block_forward(m, io, l, bc, T, nullptr, nullptr);
      check_cancel(m);
    }
    norm_forward(m, io.ln1, io.ln1_mean, io.ln1_rstd, io.x_in, m.norm_f_w, m.norm_f_b, N);
    const float* Wh = param(m, m.head);
    if (out_logits) {
      matmul_forward(out_logits + b0 * T * V, io.ln1, Wh, nullptr, N, C, V, false, nullptr);
    } else {
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

}  // namespace sieve::cpu
