// ops.h — the layers of the CPU backend, llm.c style: <op>_forward / <op>_backward pairs,
// outputs first, then inputs, then weights, then sizes. Dimension letters: see sieve.h.
//
// Promises: "+=" marks buffers that are accumulated into (parameter gradients and the
// residual-stream gradient); every other output is overwritten. Ops parallelise over
// independent outputs only; anything summed over tokens is summed in an order fixed by
// the sizes, so the bits never depend on the thread count. Sizes are validated by the
// callers (api.cc / model.cc), never here.
#pragma once

#include <cstdint>

#include "common.h"
#include "core/rope.h"

namespace sieve::cpu {

// ---- matmul.cc (a linear layer: out = inp weight^T + bias)

// accumulate = false: out = inp W^T + bias;  true: out += inp W^T + bias.
void matmul_forward(float* out /* (N, OC) */, const float* inp /* (N, IC) */,
                    const float* weight /* (OC, IC) */, const float* bias /* (OC) or null */,
                    int64_t N, int64_t IC, int64_t OC, bool accumulate, GemmStats* stats);
// dinp is overwritten (null: skip); dweight and dbias accumulate (null: skip).
void matmul_backward(float* dinp /* (N, IC) */, float* dweight /* (OC, IC) += */,
                     float* dbias /* (OC) += */, const float* dout /* (N, OC) */,
                     const float* inp /* (N, IC) */, const float* weight /* (OC, IC) */,
                     int64_t N, int64_t IC, int64_t OC, GemmStats* stats);
// out = res + bias (the start of a residual add; bias may be null)
void residual_bias_forward(float* out /* (N, C) */, const float* res /* (N, C) */,
                           const float* bias /* (C) or null */, int64_t N, int64_t C);

// ---- norm.cc

void layernorm_forward(float* out /* (N, C) */, float* mean /* (N) */, float* rstd /* (N) */,
                       const float* inp /* (N, C) */, const float* weight /* (C) */,
                       const float* bias /* (C) */, float eps, int64_t N, int64_t C);
void layernorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */,
                        float* dbias /* (C) += */, const float* dout /* (N, C) */,
                        const float* inp /* (N, C) */, const float* mean /* (N) */,
                        const float* rstd /* (N) */, const float* weight /* (C) */, int64_t N,
                        int64_t C);
void rmsnorm_forward(float* out /* (N, C) */, float* rstd /* (N) */, const float* inp /* (N, C) */,
                     const float* weight /* (C) */, float eps, int64_t N, int64_t C);
void rmsnorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */,
                      const float* dout /* (N, C) */, const float* inp /* (N, C) */,
                      const float* rstd /* (N) */, const float* weight /* (C) */, int64_t N,
                      int64_t C);

// ---- activation.cc

void gelu_forward(float* out /* (n) */, const float* inp /* (n) */, int64_t n);
// dinp may alias dout
void gelu_backward(float* dinp /* (n) */, const float* dout /* (n) */, const float* inp /* (n) */,
                   int64_t n);
void swiglu_forward(float* out /* (N, H) */, const float* inp /* (N, 2H): [gate | up] */, int64_t N,
                    int64_t H);
void swiglu_backward(float* dinp /* (N, 2H) */, const float* dout /* (N, H) */,
                     const float* inp /* (N, 2H) */, int64_t N, int64_t H);

// ---- attention.cc

// RoPE's tables are the core's (core/rope.h): the same floats on every backend.
using ::sieve::rope_tables;
void rope_forward(float* qkv /* (B, T, 3C) in place */, const float* cos_t /* (T, HS/2) */,
                  const float* sin_t /* (T, HS/2) */, int64_t B, int64_t T, int64_t C, int64_t NH);
void rope_backward(float* dqkv /* (B, T, 3C) in place */, const float* cos_t /* (T, HS/2) */,
                   const float* sin_t /* (T, HS/2) */, int64_t B, int64_t T, int64_t C, int64_t NH);

// att: the probabilities kept for the backward; null for inference, in which case each
// thread uses its (T, T) slice of scratch (omp_get_max_threads() slices).
void attention_forward(float* out /* (B, T, C) */, float* att /* (B, NH, T, T) or null */,
                       float* scratch /* (threads, T, T) */, const float* qkv /* (B, T, 3C) */,
                       int64_t B, int64_t T, int64_t C, int64_t NH);
// att: the forward's probabilities, or null to recompute them (the same bits) in scratch, which
// then holds two (T, T) slices a thread.
void attention_backward(float* dqkv /* (B, T, 3C) */, float* scratch /* (threads, T, T) or (threads, 2, T, T) */,
                        const float* dout /* (B, T, C) */, const float* qkv /* (B, T, 3C) */,
                        const float* att /* (B, NH, T, T) or null */, int64_t B, int64_t T, int64_t C,
                        int64_t NH);

// ---- embedding.cc

void embedding_forward(float* out /* (B, T, C) */, const int32_t* tokens /* (B, T) */,
                       const float* wte /* (V, C) */, const float* wpe /* (T, C) or null */,
                       int64_t B, int64_t T, int64_t C);
void embedding_backward(float* dwte /* (V, C) += */, float* dwpe /* (T, C) += or null */,
                        const float* dout /* (B, T, C) */, const int32_t* tokens /* (B, T) */,
                        int64_t B, int64_t T, int64_t C, int64_t V);

// ---- loss.cc

struct RowLoss {
  float ce;  // -log softmax(s)[target]
  float kl;  // KL(softmax(t / tau) || softmax(s / tau)), 0 without a teacher
};
// One position: returns its CE and KL; when dlogits is not null writes
// dscale * d[(1 - alpha) CE + alpha tau^2 KL] / d logits (dlogits may alias logits).
// target < 0: nothing is predicted here (returns zeros, writes a zero gradient).
RowLoss loss_row(float* dlogits /* (V) or null */, const float* logits /* (V) */, int32_t target,
                 const float* teacher /* (V) or null */, float alpha, float tau, float dscale,
                 int64_t V);

}  // namespace sieve::cpu
