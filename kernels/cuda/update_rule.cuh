// update_rule.cuh — the optimizer updates of the CUDA backend (fp32 master weights and
// moments) and the global gradient norm: the GPU twins of cpu/update_rule.h, one fused
// pass over the tensor each.
//
// Promises:
//   - Pointers are device pointers; every call is enqueued on `stream` and never
//     synchronises. Pointers need no alignment (16-byte aligned ones are vectorised).
//   - The updates give the CPU's bits: the bias corrections (double pow, as the CPU
//     computes them) are evaluated on the host and passed in; on the device every float
//     operation is the CPU's, in its order, each rounded on its own (no FMA contraction;
//     IEEE division and square root). t is the 1-based step.
//   - global_norm sums x^2 in double in an order fixed by n alone (deterministic run to
//     run); its order is not the CPU's, so the two agree to rounding (~1e-15 relative:
//     the terms are all >= 0).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sieve::cuda {

// AdamW, PyTorch's order: w *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t t, int64_t n, cudaStream_t stream);

// AST (METHODS 4.3): the decay lambda (1 - M) w enters after the momentum (m keeps the loss
// gradient only) and before the second moment.
void ast_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                const float* mask /* (n) */, float lr, float beta1, float beta2, float eps, float weight_decay,
                float lambda, int64_t t, int64_t n, cudaStream_t stream);

// AdamS (METHODS 5.3): where M = 0, u = (1 - alpha) m + alpha lambda sign(w); no decoupled decay.
void adams_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                  const float* mask /* (n) */, float lr, float beta1, float beta2, float eps, float alpha,
                  float lambda, int64_t t, int64_t n, cudaStream_t stream);

// Doubles of scratch global_norm needs for n elements.
int64_t global_norm_scratch(int64_t n);
// norm[0] = sqrt(sum x^2), accumulated in double.
void global_norm(double* norm /* (1) */, const float* x /* (n) */, int64_t n,
                 double* scratch /* (global_norm_scratch(n)) */, cudaStream_t stream);

}  // namespace sieve::cuda
