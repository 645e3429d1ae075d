// model.h — the decoder-only transformer of the CPU backend (GPT-2 and LLaMA families).
//
// One flat parameter buffer with a named tensor table; gradients, AdamW moments and masks
// are flat buffers of the same layout, allocated on first use (llm.c style), as are the
// activations (sized for the largest B T seen) and the inference scratch. The struct is
// the definition of the opaque sieve_model of sieve.h; api.cc validates arguments and
// turns the exceptions thrown here into status codes.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "grad_hook.h"
#include "transform.h"
#include "update_rule.h"

namespace sieve::cpu {

// A 64-byte aligned float buffer.
struct Buffer {
  float* data = nullptr;
  int64_t size = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
  void allocate(int64_t n, float fill);  // frees any previous contents; throws on failure
  void release();
  bool empty() const { return data == nullptr; }
};

struct TensorEntry {
  std::string name;
  int64_t offset = 0, size = 0;
  int32_t ndim = 1;
  int64_t shape[2] = {0, 0};
  int32_t kind = 0, scope = 0, decay = 0;
  TransformSpec transform;
  HookSpec hook;
  RuleSpec rule;
};

// A linear layer as the forward sees it: one GEMM over `count` consecutive weight tensors
// (count = 2 for LLaMA's gate and up, multiplied as one (2H, C) matrix).
struct Linear {
  int64_t first = -1, count = 0;  // tensor indices
  int64_t bias = -1;              // tensor index or -1
  int64_t OC = 0, IC = 0;
};

struct LayerLinears {
  Linear qkv, out, up, down;  // up: fc (gpt2) or gate+up (llama); down: proj / down
  int64_t norm1_w = -1, norm1_b = -1, norm2_w = -1, norm2_b = -1;
};

// Pointers into the training arena for one (B, T); see layout_activations in model.cc.
struct Activations {
  int64_t B = 0, T = 0;
  float *x, *xmid, *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *ln2, *ln2_mean, *ln2_rstd, *fc, *act;
  float *lnf, *lnf_mean, *lnf_rstd;
  float *dx, *dln, *datty, *dqkv, *dfc, *dact, *logits, *att_scratch, *ce, *kl, *dw_scratch;
};

}  // namespace sieve::cpu

struct sieve_model {
  sieve_config cfg{};
  int64_t C = 0, NH = 0, HS = 0, H = 0, V = 0, L = 0, FC = 0;  // FC: width of the up projection
  std::vector<sieve::cpu::TensorEntry> tensors;
  std::unordered_map<std::string, int64_t> by_name;
  int64_t num_params = 0;
  int64_t tok_emb = -1, pos_emb = -1, norm_f_w = -1, norm_f_b = -1, head = -1;
  std::vector<sieve::cpu::LayerLinears> layers;

  sieve::cpu::Buffer params, grads, masks, adam_m, adam_v, wt;
  std::vector<float> rope_cos, rope_sin;  // (context, HS/2), llama

  sieve::cpu::Buffer train_mem;
  sieve::cpu::Activations acts{};
  int64_t train_threads = 0;
  sieve::cpu::Buffer infer_mem;

  int64_t step = 0;
  int threads = 1;
  std::atomic<int> cancel{0};
  std::atomic<int> busy{0};
  sieve_timers timers{};
  sieve::cpu::GemmStats gemm_stats;
};

namespace sieve::cpu {

void config_check(const sieve_config& cfg);  // throws SIEVE_E_INVALID_ARGUMENT with the reason
void model_build(sieve_model& m, const sieve_config& cfg);
void model_init(sieve_model& m, uint64_t seed);
float* model_buffer(sieve_model& m, int32_t which);  // allocates on first use

void model_set_transform(sieve_model& m, int64_t tensor, int32_t kind, const float* params, int64_t n);
void model_set_grad_hook(sieve_model& m, int64_t tensor, int32_t kind, const float* params, int64_t n);
void model_set_update_rule(sieve_model& m, int64_t tensor, int32_t kind, const float* params, int64_t n);

sieve_loss model_forward_backward(sieve_model& m, const int32_t* inputs, const int32_t* targets,
                                  const float* teacher, const sieve_loss_opts& opts, int64_t B, int64_t T);
float model_optimizer_step(sieve_model& m, const sieve_optim_opts& opts);
// out_nll (B, T-1) or out_logits (B, T, V): exactly one is non-null.
void model_infer(sieve_model& m, float* out_nll, float* out_logits, const int32_t* tokens, int64_t B, int64_t T,
                 sieve_progress_fn progress, void* user);

}  // namespace sieve::cpu
