// attention.cuh — fused causal multi-head self-attention on the GPU, forward and backward: the
// twin of cpu/attention.cc's attention_forward / attention_backward (ops.h), FlashAttention-2
// style: scores and probabilities live one tile at a time in shared memory (fp32 math) or in
// the tensor-core accumulators (bf16 math), never as a T x T matrix, so memory grows with T,
// not T^2.
//
// Layout as the CPU: qkv (B, T, 3C) = [q | k | v] per position, head h at columns
// [h HS, (h+1) HS) of each part (HS = C / NH); out (B, T, C); S = q k^T / sqrt(HS);
// P = softmax(S) over keys <= query; out = P v.
//
// Promises:
//   - Pointers are device pointers; every call only enqueues work on `stream` and never
//     synchronises. Sizes: B, T, NH >= 1, C % NH == 0, 1 <= HS <= 128 (any value: the tiles are
//     padded with zeros to 16, 32, 64 or 128 columns); anything else throws sieve::Error
//     (SIEVE_E_INVALID_ARGUMENT). Pointers need no alignment: 16-byte aligned ones with
//     HS % 4 == 0 take vectorised loads.
//   - Two kinds of math (AttentionMath), picked per head size by attention_math() unless the
//     caller names one:
//       fp32: fp32 throughout on CUDA cores (fp32 products and sums, expf/logf): within float
//             rounding of the CPU, which sums in another order (test/gpu/attention_checks.cu:
//             1e-5 relative). Any HS.
//       bf16: the products (Q K^T, P V in the forward; S, dP, dS K, P^T dO, dS^T Q in the
//             backward) on tensor cores (mma.sync m16n8k16 on registers) with bf16 operands and
//             fp32 accumulation: the fp32 inputs are rounded to bf16 (nearest even) as they are
//             staged in shared memory, and P and dS are rounded to bf16 (from their fp32 values)
//             before their products. Softmax statistics (row max,
//             row sum), lse, D = rowsum(dO (.) O), the masking and the outputs stay fp32:
//             within about 1e-2 relative of the CPU (lse within 1e-3). Head sizes 33..128
//             (padded to 64 or 128); the default for HS = 64 and 128.
//     Either backward takes either forward's out and lse (lse means the same in both).
//   - Deterministic: the same inputs give the same bits on every run and every stream. There
//     are no atomics; every output element is summed in a fixed order by one thread (fp32) or
//     by one warp's fixed sequence of tensor-core products over the tiles in order (bf16).
//   - The backward recomputes P from the forward's lse, so it needs the very qkv, out and lse
//     of the forward; dqkv is overwritten entirely (the q, k and v parts of every head).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sieve::cuda {

enum class AttentionMath { fp32, bf16 };

// Which math attention_forward / attention_backward use at head size HS when not told: bf16
// tensor cores for HS 64 and 128, else fp32.
AttentionMath attention_math(int64_t HS);

// out (B, T, C) fp32; out_bf16 (B, T, C) the same values rounded to nearest even, or null to
// skip (it feeds a bf16 GEMM); lse (B, NH, T): the natural log of each row's sum of
// exp(scaled score), kept for the backward, or null (inference).
void attention_forward(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream);
// The same with the math named: AttentionMath::bf16 throws sieve::Error for HS < 33.
void attention_forward(float* out, __nv_bfloat16* out_bf16, float* lse, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH, cudaStream_t stream, AttentionMath math);

// dqkv (B, T, 3C) overwritten with the gradient of the loss through out, given dout (B, T, C)
// and the forward's qkv, out and lse. scratch holds attention_backward_scratch_floats(...)
// floats: D = rowsum(dout (.) out) per (b, head, t), 4 B NH T bytes (3 MB at B=16, T=4096,
// NH=12); its contents on entry do not matter.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream);
// The same with the math named: AttentionMath::bf16 throws sieve::Error for HS < 33.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                        float* scratch, int64_t B, int64_t T, int64_t C, int64_t NH, cudaStream_t stream,
                        AttentionMath math);

size_t attention_backward_scratch_floats(int64_t B, int64_t T, int64_t C, int64_t NH);

}  // namespace sieve::cuda
