// model.h — the decoder-only transformer of the CPU backend (GPT-2 and LLaMA families):
// one model's memory and passes, behind the core's ModelBackend interface.
//
// The layout (tensor table, seam settings), the thread count and the cancel flag are the
// core's (core/model.h); everything here is the CPU's own: the flat buffers (params,
// grads, masks, moments, W~), allocated on first use llm.c style, the training activations
// (sized for the largest B T seen), the inference scratch, and the timers. The passes and
// zero_grad run on the calling thread's OpenMP team, set to the model's thread count for
// the call (OpenMP is the CPU's business, not the core's). The core has checked every
// argument; errors are thrown (core/error.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common.h"
#include "core/model.h"
#include "transform.h"

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

// Pointers into the training arena for one (B, T), N = B T (layout_activations in
// model.cc). The per-layer arrays keep one slice per block for the backward; the
// gradients of activations are one block's worth, reused by every block.
// keep: always (faster: no second S = q k^T, no second softmax); recompute: never (memory:
// two (T, T) slices a thread instead); automatic: keep while they fit kKeptProbabilitiesBytes.
enum class AttentionProbabilities { automatic, keep, recompute };
AttentionProbabilities attention_probabilities_from_env();
constexpr double kKeptProbabilitiesBytes = 1024.0 * 1024.0 * 1024.0;

struct Activations {
  int64_t B = 0, T = 0;
  float* x;            // (L + 1, N, C) residual stream: block l reads slice l, writes slice l + 1
  float* xmid;         // (L, N, C) residual stream between attention and MLP
  float* ln1;          // (L, N, C) norm1 output
  float* ln1_mean;     // (L, N) (LayerNorm only)
  float* ln1_rstd;     // (L, N)
  float* qkv;          // (L, N, 3C) q | k | v, RoPE applied (llama)
  float* att;          // (L, B, NH, T, T) attention probabilities, or null: recomputed by the backward
  float* atty;         // (L, N, C) attention output, before attn.out
  float* ln2;          // (L, N, C) norm2 output
  float* ln2_mean;     // (L, N)
  float* ln2_rstd;     // (L, N)
  float* fc;           // (L, N, FC) up projection: fc (gpt2) or gate | up (llama)
  float* act;          // (L, N, H) gelu(fc) or silu(gate) up
  float* lnf;          // (N, C) final norm output
  float* lnf_mean;     // (N)
  float* lnf_rstd;     // (N)
  float* dx;           // (N, C) d loss / d residual stream at the current block boundary
  float* dln;          // (N, C) d loss / d a norm's output
  float* datty;        // (N, C)
  float* dqkv;         // (N, 3C)
  float* dfc;          // (N, FC)
  float* dact;         // (N, H)
  float* logits;       // (rows, V) one LM-head chunk (rows <= head_chunk), then its gradient
  float* att_scratch;  // (threads, T, T) per-thread attention scratch; (threads, 2, T, T) without att
  float* ce;           // (N) cross-entropy per position
  float* kl;           // (N) KL per position (0 without a teacher)
  float* dw_scratch;   // (max OC IC over the linear layers) dW~ of a non-straight-through transform
  // Only with the features that use them (0 floats otherwise):
  float* slorb_xp;     // (L, N, RL) X P^T of each SLoRB weight of each block, RL = the sum of their ranks
  float* slorb_dxp;    // (N, rmax) d loss / d X P^T of one SLoRB weight
  float* mvue_dout;    // (N, max OC) dZ with the MVUE weights' columns sparsified (the weight-gradient GEMM's)
};

class CpuModel final : public ModelBackend {
 public:
  explicit CpuModel(const sieve_model& model);  // allocates the parameters (zeros)

  void read(int32_t which, int64_t offset, int64_t count, float* dst) override;
  void write(int32_t which, int64_t offset, int64_t count, const float* src) override;
  void seam_changed(int64_t tensor, Seam seam) override;
  void zero_grad() override;
  sieve_loss forward_backward(const int32_t* inputs, const int32_t* targets, const float* teacher,
                              const sieve_loss_opts& opts, int64_t B, int64_t T) override;
  float optimizer_step(const sieve_optim_opts& opts, int64_t t) override;
  void infer(float* nll, float* logits, const int32_t* tokens, int64_t B, int64_t T, sieve_progress_fn progress,
             void* user) override;
  // 2:4 sparsity on the model's tensors (sparse_model.cc)
  void update_masks(int32_t method, const int64_t* tensors, int64_t n, int64_t* flips) override;
  void mask_stats(const int64_t* tensors, int64_t n, double* pruned_abs, double* total_abs) override;
  void count24(const int64_t* tensors, int64_t n, bool both_ways, int64_t* violations) override;
  void sste_dots(int64_t tensor, double* ws, double* ss) override;
  void slorb_init_mean(const int64_t* tensors, int64_t n) override;
  void materialize(int64_t tensor) override;
  // quantization (model.cc)
  void input_hessians(double* out, const int64_t* tensors, int64_t n, const int32_t* tokens, int64_t B, int64_t T,
                      sieve_progress_fn progress, void* user) override;
  void post_quant_integral(double* pqi, double* losses, const int64_t* tensors, int64_t n, const float* deltas,
                           const double* points, const double* weights, int64_t K, const int32_t* inputs,
                           const int32_t* targets, int64_t M, int64_t T, int64_t micro, sieve_progress_fn progress,
                           void* user) override;
  sieve_timers timers() const override;
  void reset_timers() override;

  // Read by the passes in model.cc.
  const sieve_model& model;  // threads, cancel flag
  const Layout& net;         // the tensor table and seam settings

  Buffer params, grads, masks, adam_m, adam_v;  // (P) each, one layout
  Buffer wt;                                     // (P) W~ of the transformed linear weights
  std::vector<TransformState> transform_state;   // per tensor
  std::vector<float> rope_cos, rope_sin;         // (context, HS/2), llama
  SlorbColumns slorb;  // where each weight's X P^T sits in a block's slice of Activations::slorb_xp

  // Whether training keeps every layer's attention probabilities for the backward (L B NH T^2
  // floats) or recomputes them there: SIEVE_CPU_ATTENTION, read when the model is made.
  const AttentionProbabilities attention_probabilities;

  Buffer train_mem;        // the arena behind acts
  Activations acts{};
  int64_t train_threads = 0;  // threads the arena's attention scratch was sized for
  Buffer infer_mem;        // the inference scratch

  // Called by every linear layer's forward with its input rows while set (input_hessians).
  LinearTap linear_tap;

  sieve_timers timing{};
  GemmStats gemm_stats;

  // The flat buffer `which` (SIEVE_BUFFER_*), as it is (maybe empty), or allocated with its
  // initial value if needed.
  Buffer& buffer(int32_t which);
  float* flat(int32_t which);
  // What tensor idx's transform reads: its weights, mask (if allocated) and scale adapter.
  TransformInputs transform_inputs(int64_t idx) const;
};

}  // namespace sieve::cpu
