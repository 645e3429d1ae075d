// layers.cuh — the per-layer ops of the GPU model: LayerNorm and RMSNorm, GELU and SwiGLU, the
// residual add, the bias gradient, the embeddings (with a host-built plan for their gradient),
// RoPE, the softmax cross-entropy with distillation, and the fp32 -> bf16 copy. Each is the
// twin of the cpu/ops.h function of the same name (bias_backward: the dbias of cpu
// matmul_backward; loss_rows: cpu loss_row over a chunk of rows).
//
// Promises:
//   - Pointers are device pointers, row-major; every call is enqueued on `stream` and never
//     synchronises (EmbeddingPlan::build may block the host until its upload is staged).
//     "+=" marks outputs that accumulate, as on the CPU; every other output is overwritten.
//   - Same bits as the CPU (every float operation is the CPU's, in its order, each rounded on
//     its own: no FMA contraction; IEEE division and square root; exp_f32 is common.h's):
//     GELU, SwiGLU, the residual add, RoPE, the embeddings and their gradients (each row sums
//     its positions in the CPU's order), the bias gradient and the norms' weight and bias
//     gradients (chunks of 64 rows, each summed in row order, the chunks added in order, as
//     the CPU does). The norms' row statistics use the CPU's 16 fixed lanes (a half-warp
//     per row), so their outputs and input gradients follow the CPU's order too.
//   - loss_rows reduces each row over a block in a tree of its own: deterministic run to
//     run, within rounding of the CPU (its log-sum-exps in double, as the CPU forms them).
//   - No float atomics anywhere: every result's bits depend only on the inputs and sizes.
//   - bf16 copies (out_bf16, to_bf16) are the fp32 results rounded to nearest even; an
//     optional fp32 output may be null when only the bf16 copy is wanted.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "device_buffer.cuh"

namespace sieve::cuda {

// ---- norms. The backwards need scratch: norm_backward_scratch_floats(N, C) floats (both
// norms), reused freely between calls on the same stream.

size_t norm_backward_scratch_floats(int64_t N, int64_t C);

void layernorm_forward(float* out /* (N, C) or null */, __nv_bfloat16* out_bf16 /* (N, C) or null */,
                       float* mean /* (N) */, float* rstd /* (N) */, const float* inp /* (N, C) */,
                       const float* weight /* (C) */, const float* bias /* (C) */, float eps, int64_t N, int64_t C,
                       cudaStream_t stream);
void layernorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */, float* dbias /* (C) += */,
                        const float* dout /* (N, C) */, const float* inp /* (N, C) */, const float* mean /* (N) */,
                        const float* rstd /* (N) */, const float* weight /* (C) */, float* scratch, int64_t N,
                        int64_t C, cudaStream_t stream);
void rmsnorm_forward(float* out /* (N, C) or null */, __nv_bfloat16* out_bf16 /* (N, C) or null */,
                     float* rstd /* (N) */, const float* inp /* (N, C) */, const float* weight /* (C) */, float eps,
                     int64_t N, int64_t C, cudaStream_t stream);
void rmsnorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */, const float* dout /* (N, C) */,
                      const float* inp /* (N, C) */, const float* rstd /* (N) */, const float* weight /* (C) */,
                      float* scratch, int64_t N, int64_t C, cudaStream_t stream);

// ---- activations (elementwise; dinp may alias dout)

void gelu_forward(float* out /* (n) or null */, __nv_bfloat16* out_bf16 /* (n) or null */, const float* inp /* (n) */,
                  int64_t n, cudaStream_t stream);
void swiglu_forward(float* out /* (N, H) or null */, __nv_bfloat16* out_bf16 /* (N, H) or null */,
                    const float* inp /* (N, 2H): [gate | up] */, int64_t N, int64_t H, cudaStream_t stream);
void swiglu_backward(float* dinp /* (N, 2H) or null */, __nv_bfloat16* dinp_bf16 /* (N, 2H) or null */,
                     const float* dout /* (N, H) */, const float* inp /* (N, 2H) */, int64_t N, int64_t H,
                     cudaStream_t stream);

// ---- linear layers' elementwise parts

// out = res + bias (bias may be null; out may be res)
void residual_bias_forward(float* out /* (N, C) */, const float* res /* (N, C) */, const float* bias /* (C) or null */,
                           int64_t N, int64_t C, cudaStream_t stream);
// dbias += the column sums of dout, and (dout_bf16 not null) dout rounded to bf16 into dout_bf16:
// the layer's GEMMs multiply that copy, and writing it here reads dout once for both.
// Scratch: bias_backward_scratch_floats(N, OC) floats.
size_t bias_backward_scratch_floats(int64_t N, int64_t OC);
void bias_backward(float* dbias /* (OC) += */, __nv_bfloat16* dout_bf16 /* (N, OC) or null */,
                   const float* dout /* (N, OC) */, float* scratch, int64_t N, int64_t OC, cudaStream_t stream);
// GELU's backward (cpu gelu_backward) then bias_backward of the layer before it, in one pass and
// the same bits:
// dinp = gelu'(inp) dout into dinp_bf16 (and into dinp when not null), dbias += its column sums.
// The fp32 dinp is neither written nor read back when only the bf16 copy is wanted.
// Scratch: bias_backward_scratch_floats(N, H) floats.
void gelu_backward_bias(float* dbias /* (H) += */, float* dinp /* (N, H) or null */,
                        __nv_bfloat16* dinp_bf16 /* (N, H) */, const float* dout /* (N, H) */,
                        const float* inp /* (N, H) */, float* scratch, int64_t N, int64_t H, cudaStream_t stream);

// ---- embeddings

void embedding_forward(float* out /* (B, T, C) */, const int32_t* tokens /* (B, T) */, const float* wte /* (V, C) */,
                       const float* wpe /* (T, C) or null */, int64_t B, int64_t T, int64_t C, cudaStream_t stream);

// One batch's tokens on the device and the plan of its embedding gradient: the distinct
// tokens and, for each, the positions where it occurs in increasing order (CSR), built on the
// host where the tokens arrive. Its device buffers grow as needed and are reused.
class EmbeddingPlan {
 public:
  // Tokens in [0, V) (the caller checks them); the plan and tokens() are valid on `stream`
  // once the upload queued here has run.
  void build(const int32_t* host_tokens /* (B, T) */, int64_t B, int64_t T, cudaStream_t stream);
  const int32_t* tokens() const { return dev_.get(); }  // (B, T), device
  int64_t B() const { return B_; }
  int64_t T() const { return T_; }
  // dwte += each distinct token's rows of dout, summed in position order (one block per
  // token); dwpe += the rows of each position summed over the batch in order (null: skip).
  void backward(float* dwte /* (V, C) += */, float* dwpe /* (T, C) += or null */, const float* dout /* (B, T, C) */,
                int64_t C, cudaStream_t stream) const;

 private:
  int64_t B_ = 0, T_ = 0, distinct_ = 0;
  std::vector<int32_t> host_;   // staging: [tokens (n) | positions (n) | distinct (U) | offsets (U + 1)]
  std::vector<int32_t> count_;  // per token id: occurrences, then fill cursors
  DeviceBuffer<int32_t> dev_;   // host_'s layout, capacity 4n + 1 (U <= n)
};

// ---- RoPE, in place on q and k of every head; cos/sin from cpu::rope_tables, uploaded

void rope_forward(float* qkv /* (B, T, 3C) */, const float* cos_t /* (T, HS/2) */, const float* sin_t /* (T, HS/2) */,
                  int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream);
void rope_backward(float* dqkv /* (B, T, 3C) */, const float* cos_t /* (T, HS/2) */,
                   const float* sin_t /* (T, HS/2) */, int64_t B, int64_t T, int64_t C, int64_t NH,
                   cudaStream_t stream);

// ---- the loss: cpu::loss_row for each of `rows` rows (one block per row)

// ce, kl (rows) receive each row's RowLoss (either may be null); dlogits, when not null,
// dscale d[(1 - alpha) CE + alpha tau^2 KL] / d logits, and may alias logits. A target < 0
// gives zeros and a zero gradient; teacher null: no distillation (kl = 0). Rows of logits,
// dlogits and teacher are ld >= V floats apart (the model pads them for aligned GEMMs); their
// columns past V are neither read nor written. dlogits_bf16 (or null) gets the gradient rounded
// to bf16, what the head's backward GEMMs read, and zeros in the columns past V, which they
// multiply too: written here, the fp32 gradient need not be (dlogits may then be null).
void loss_rows(float* dlogits /* (rows, ld) or null */, __nv_bfloat16* dlogits_bf16 /* (rows, ld) or null */,
               float* ce /* (rows) */, float* kl /* (rows) */, const float* logits /* (rows, ld) */,
               const int32_t* targets /* (rows) */, const float* teacher /* (rows, ld) or null */, float alpha,
               float tau, float dscale, int64_t rows, int64_t V, int64_t ld, cudaStream_t stream);

// ---- dst = round-to-nearest-even(src)

void to_bf16(__nv_bfloat16* dst /* (n) */, const float* src /* (n) */, int64_t n, cudaStream_t stream);

}  // namespace sieve::cuda
