// layout.h — the model as every backend sees it: the config, the sizes derived from it,
// and the named tensor table that lays out the flat buffers (params, grads, masks, m, v),
// with each tensor's seam settings.
//
// Promises: the table follows docs/architecture.md (names, shapes, nn.Linear [out, in]
// layout) and is contiguous in table order, so a tensor's offset is the same in every
// flat buffer and on every backend. It holds no numbers: where they live is the
// backend's business (kernels/core/backend.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sieve.h"

namespace sieve {

// One seam's setting on one tensor: the kind (SIEVE_TRANSFORM_*, SIEVE_HOOK_* or
// SIEVE_RULE_*) and its numbers, as checked by seams.h.
struct SeamSpec {
  int32_t kind = 0;
  std::vector<float> params;
};

struct TensorEntry {
  std::string name;
  int64_t offset = 0, size = 0;  // in floats, into every flat buffer
  int32_t ndim = 1;
  int64_t shape[2] = {0, 0};     // [out, in] for matrices; shape[1] = 0 for vectors
  int32_t kind = 0, scope = 0, decay = 0;  // SIEVE_KIND_*, SIEVE_SCOPE_*, decay flag
  SeamSpec transform;            // SIEVE_TRANSFORM_NONE until set
  SeamSpec hook;                 // SIEVE_HOOK_NONE until set
  SeamSpec rule;                 // SIEVE_RULE_ADAMW until set
  // A linear weight's adapters (config adapter_scope), as tensor indices; -1: none.
  int64_t slorb_s = -1, slorb_p = -1, scale = -1;
  // An adapter's role and the linear weight it belongs to.
  int32_t adapter = 0;           // Adapter::*
  int64_t owner = -1;
  // MVUE on the weight gradient (sieve_model_set_mvue): on, and the caller's seed.
  bool mvue = false;
  uint64_t mvue_seed = 0;
};

// What an adapter tensor is to its linear weight.
enum Adapter : int32_t { kNotAdapter = 0, kSlorbS = 1, kSlorbP = 2, kScale = 3 };

// A linear layer as the forward sees it: one GEMM over `count` consecutive weight tensors
// (count = 2 for LLaMA's gate and up, multiplied as one (2H, C) matrix).
struct Linear {
  int64_t first = -1, count = 0;  // tensor indices
  int64_t bias = -1;              // tensor index or -1
  int64_t OC = 0, IC = 0;
};

// The tensor indices of one block.
struct LayerLinears {
  Linear qkv, out, up, down;  // up: fc (gpt2) or gate+up (llama); down: proj / down
  int64_t norm1_w = -1, norm1_b = -1, norm2_w = -1, norm2_b = -1;  // biases: gpt2 only
};

struct Layout {
  sieve_config cfg{};
  // the legend of sieve.h; FC is the width of the up projection: H (gpt2) or 2H (llama)
  int64_t C = 0, NH = 0, HS = 0, H = 0, V = 0, L = 0, FC = 0;
  std::vector<TensorEntry> tensors;
  std::unordered_map<std::string, int64_t> by_name;
  int64_t num_params = 0;  // P
  int64_t tok_emb = -1, pos_emb = -1, norm_f_w = -1, norm_f_b = -1, head = -1;  // head = tok_emb (gpt2: tied)
  std::vector<LayerLinears> layers;

  bool gpt2() const { return cfg.family == SIEVE_FAMILY_GPT2; }
  // SLoRB rank of a linear weight with SLoRB adapters: IC / k.
  int64_t slorb_rank(const TensorEntry& t) const { return t.shape[1] / cfg.slorb_k; }
  // The linear layer whose GEMM multiplies tensor idx, or null.
  const Linear* linear_of(int64_t idx) const;
};

// SLoRB's X P^T of every adapted weight of a block, one (N, r) matrix after another in one slice
// per block, kept by the forward for the backward: where each weight's starts in the slice (in
// units of N values; -1 for a tensor without SLoRB), the slice's width (the sum of the block's
// ranks, the same for every block) and the largest rank (the backward's scratch).
struct SlorbColumns {
  std::vector<int64_t> col;  // per tensor index
  int64_t width = 0, rmax = 0;
  explicit SlorbColumns(const Layout& net);
};

// The distinct linear layers of a list of weight tensors, and each tensor's place among them:
// tensors that share a layer share its input (LLaMA's gate and up), so input_hessians
// accumulates one Gram matrix per layer.
struct LinearGroups {
  std::vector<const Linear*> lins;
  std::vector<int64_t> slot;  // per listed tensor: its layer's index in lins
  LinearGroups(const Layout& net, const int64_t* tensors, int64_t n);
  // The index of lin in lins, or -1.
  int64_t find(const Linear& lin) const;
};

// What a backend calls with every linear layer's fp32 input rows while it is set
// (input_hessians), and the scope that sets it and clears it on the way out, thrown or not.
using LinearTap = std::function<void(const Linear&, const float* inp, int64_t N)>;
class TapScope {
 public:
  TapScope(LinearTap& slot, LinearTap tap) : slot_(slot) { slot_ = std::move(tap); }
  ~TapScope() { slot_ = nullptr; }
  TapScope(const TapScope&) = delete;
  TapScope& operator=(const TapScope&) = delete;

 private:
  LinearTap& slot_;
};

// Throws SIEVE_E_INVALID_ARGUMENT with the reason when cfg is not a model the engine builds
// (adapters included: every in-scope linear weight's IC must be divisible by slorb_k and by
// scale_segments).
void config_check(const sieve_config& cfg);
// The layout of a config that passed config_check.
Layout layout_build(const sieve_config& cfg);

}  // namespace sieve
