// layout.cc — config checks and the tensor table of both families.
#include "layout.h"

#include <algorithm>
#include <cmath>

#include "error.h"

namespace sieve {

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 24;
constexpr int64_t kMaxParams = (int64_t(1) << 31) - 1;

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
  SIEVE_CHECK(c.adapter_scope >= 0 && c.adapter_scope <= (SIEVE_SCOPE_ATTN | SIEVE_SCOPE_FFN),
              "adapter_scope must be 0 (none) or a combination of attn (%d) and ffn (%d), got %d", SIEVE_SCOPE_ATTN,
              SIEVE_SCOPE_FFN, (int)c.adapter_scope);
  SIEVE_CHECK(c.slorb_k >= 0, "slorb_k must be >= 0 (0: no SLoRB), got %lld", (long long)c.slorb_k);
  SIEVE_CHECK(c.scale_segments >= 0, "scale_segments must be >= 0 (0: no weight scales), got %lld",
              (long long)c.scale_segments);
  if (c.adapter_scope == 0) {
    SIEVE_CHECK(c.slorb_k == 0 && c.scale_segments == 0,
                "slorb_k (%lld) and scale_segments (%lld) need an adapter_scope (attn, ffn or both), got none",
                (long long)c.slorb_k, (long long)c.scale_segments);
  } else {
    SIEVE_CHECK(c.slorb_k > 0 || c.scale_segments > 0,
                "adapter_scope is set but neither slorb_k nor scale_segments is: set one, or the scope to 0");
  }
  // Input widths of the in-scope linear weights: attn (qkv, out) read C; ffn's up side
  // (fc | gate, up) reads C and its down side (proj | down) reads H.
  auto check_width = [&](int64_t div, const char* what) {
    if (div <= 0) return;
    if (c.adapter_scope & (SIEVE_SCOPE_ATTN | SIEVE_SCOPE_FFN))
      SIEVE_CHECK(C % div == 0, "%s = %lld must divide the input width of every in-scope linear weight: dim = %lld",
                  what, (long long)div, (long long)C);
    if (c.adapter_scope & SIEVE_SCOPE_FFN)
      SIEVE_CHECK(H % div == 0, "%s = %lld must divide the input width of every in-scope linear weight: mlp_hidden = %lld",
                  what, (long long)div, (long long)H);
  };
  check_width(c.slorb_k, "slorb_k");
  check_width(c.scale_segments, "scale_segments");
  const int64_t per_layer = c.family == SIEVE_FAMILY_GPT2 ? 4 * C + 3 * C * C + 3 * C + C * C + C + 2 * H * C + H + C
                                                          : 2 * C + 4 * C * C + 3 * H * C;
  const int64_t global = c.family == SIEVE_FAMILY_GPT2 ? V * C + c.context * C + 2 * C : 2 * V * C + C;
  // adapters of one linear weight [OC, IC]: slorb_s (OC, r) + slorb_p (r, IC), scale (OC, SG)
  auto adapters = [&](double OC, double IC) {
    double n = 0;
    if (c.slorb_k > 0) n += (OC + IC) * (IC / (double)c.slorb_k);
    if (c.scale_segments > 0) n += OC * (double)c.scale_segments;
    return n;
  };
  double per_layer_adapters = 0;
  if (c.adapter_scope & SIEVE_SCOPE_ATTN) per_layer_adapters += adapters(3.0 * C, C) + adapters(C, C);
  if (c.adapter_scope & SIEVE_SCOPE_FFN)
    per_layer_adapters += c.family == SIEVE_FAMILY_GPT2 ? adapters(H, C) + adapters(C, H)
                                                        : 2 * adapters(H, C) + adapters(C, H);
  const double total = ((double)per_layer + per_layer_adapters) * (double)c.layers + (double)global;
  SIEVE_CHECK(total <= (double)kMaxParams, "the model would have %.0f parameters; at most %lld are supported", total,
              (long long)kMaxParams);
}

const Linear* Layout::linear_of(int64_t idx) const {
  for (const LayerLinears& ll : layers)
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down})
      if (idx >= lin->first && idx < lin->first + lin->count) return lin;
  return nullptr;
}

SlorbColumns::SlorbColumns(const Layout& net) : col(net.tensors.size(), -1) {
  for (size_t l = 0; l < net.layers.size(); l++) {
    const LayerLinears& ll = net.layers[l];
    int64_t at = 0;
    for (const Linear* lin : {&ll.qkv, &ll.out, &ll.up, &ll.down})
      for (int64_t i = 0; i < lin->count; i++) {
        const TensorEntry& t = net.tensors[lin->first + i];
        if (t.slorb_s < 0) continue;
        const int64_t r = net.slorb_rank(t);
        col[lin->first + i] = at;
        at += r;
        rmax = std::max(rmax, r);
      }
    width = at;
  }
}

LinearGroups::LinearGroups(const Layout& net, const int64_t* tensors, int64_t n) : slot(n) {
  for (int64_t i = 0; i < n; i++) {
    const Linear* lin = net.linear_of(tensors[i]);
    auto it = std::find(lins.begin(), lins.end(), lin);
    slot[i] = it - lins.begin();
    if (it == lins.end()) lins.push_back(lin);
  }
}

int64_t LinearGroups::find(const Linear& lin) const {
  auto it = std::find(lins.begin(), lins.end(), &lin);
  return it == lins.end() ? -1 : it - lins.begin();
}

Layout layout_build(const sieve_config& cfg) {
  Layout m;
  m.cfg = cfg;
  m.C = cfg.dim;
  m.NH = cfg.heads;
  m.HS = cfg.dim / cfg.heads;
  m.H = cfg.mlp_hidden;
  m.V = cfg.vocab;
  m.L = cfg.layers;
  m.FC = m.gpt2() ? m.H : 2 * m.H;
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
  // The adapters of linear weight w (none when its scope is not in adapter_scope), named
  // X.slorb_s, X.slorb_p, X.scale for X.weight; kind ADAPTER, no scope, no weight decay.
  auto adapters = [&](int64_t w) {
    if (!(m.tensors[w].scope & cfg.adapter_scope)) return;
    const std::string x = m.tensors[w].name.substr(0, m.tensors[w].name.size() - 7);  // drop ".weight"
    const int64_t OC = m.tensors[w].shape[0], IC = m.tensors[w].shape[1];
    auto adapter = [&](const char* suffix, int64_t d0, int64_t d1, Adapter role) {
      const int64_t i = add(x + suffix, d0, d1, SIEVE_KIND_ADAPTER, SIEVE_SCOPE_NONE);
      m.tensors[i].decay = 0;
      m.tensors[i].adapter = role;
      m.tensors[i].owner = w;
      return i;
    };
    if (cfg.slorb_k > 0) {
      const int64_t r = IC / cfg.slorb_k;
      const int64_t s = adapter(".slorb_s", OC, r, kSlorbS);
      const int64_t p = adapter(".slorb_p", r, IC, kSlorbP);
      m.tensors[w].slorb_s = s;
      m.tensors[w].slorb_p = p;
    }
    if (cfg.scale_segments > 0) {
      const int64_t a = adapter(".scale", OC, cfg.scale_segments, kScale);
      m.tensors[w].scale = a;
    }
  };
  // A linear layer's weight (and bias), then the weight's adapters.
  auto linear = [&](const std::string& name, int64_t OC, int64_t IC, int32_t scope, bool bias) {
    Linear lin;
    lin.first = add(name + ".weight", OC, IC, SIEVE_KIND_LINEAR, scope);
    lin.count = 1;
    lin.bias = bias ? add(name + ".bias", OC, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE) : -1;
    lin.OC = OC;
    lin.IC = IC;
    adapters(lin.first);
    return lin;
  };
  const bool g = m.gpt2();

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
      // gate and up are adjacent so the forward multiplies them as one (2H, C) matrix; their
      // adapters follow the pair (gate's, then up's)
      ll.up.first = add(p + "mlp.gate.weight", H, C, SIEVE_KIND_LINEAR, SIEVE_SCOPE_FFN);
      const int64_t up = add(p + "mlp.up.weight", H, C, SIEVE_KIND_LINEAR, SIEVE_SCOPE_FFN);
      ll.up.count = 2;
      ll.up.OC = 2 * H;
      ll.up.IC = C;
      adapters(ll.up.first);
      adapters(up);
      ll.down = linear(p + "mlp.down", C, H, SIEVE_SCOPE_FFN, false);
    }
    m.layers.push_back(ll);
  }
  m.norm_f_w = add("norm_f.weight", C, 0, SIEVE_KIND_NORM, SIEVE_SCOPE_NONE);
  if (g) m.norm_f_b = add("norm_f.bias", C, 0, SIEVE_KIND_BIAS, SIEVE_SCOPE_NONE);
  m.head = g ? m.tok_emb : add("lm_head.weight", V, C, SIEVE_KIND_HEAD, SIEVE_SCOPE_NONE);
  return m;
}

}  // namespace sieve
