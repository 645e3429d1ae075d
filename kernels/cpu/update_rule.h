// update_rule.h — the maths of the update-rule seam on the CPU: how one tensor (parameter
// group) moves given its gradient, and the optimizer arithmetic shared by the rules.
//
// Adding a rule touches core/seams.cc for its contract (name, parameters, whether it reads
// the mask or keeps moments) and a case here and in update_rule.cc. A rule sees the tensor's
// weights, gradient, both moment buffers, its mask and the step's hyperparameters, so
// mask-aware rules (AST's decay-outside-momentum Adam, CAST's AdamS) need nothing else.
#pragma once

#include <cstdint>

#include "core/layout.h"

namespace sieve::cpu {

struct StepHyper {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t t;  // optimizer step, 1-based (bias correction)
};

// decay: whether decoupled weight decay applies to this tensor (sieve_tensor_info.decay).
// m and v are null when no tensor of the model has a rule that keeps moments
// (update_rule_uses_moments, core/seams.h).
void update_rule_apply(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                       const float* mask /* (n) */, bool decay, const StepHyper& hp, const SeamSpec& spec,
                       int64_t n);

// AdamW (Loshchilov & Hutter), PyTorch's order of operations:
//   w *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   w -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_update(float* w, float* m, float* v, const float* grad, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t t, int64_t n);

// AST (METHODS 4.3): w *= 1 - lr wd; m = b1 m + (1 - b1) g; u = m + lambda (1 - M) w (u = m
// exactly where M = 1); v = b2 v + (1 - b2) u^2; w -= (lr / (1 - b1^t)) u / (sqrt(v) / sqrt(1 - b2^t) + eps)
void ast_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1, float beta2,
                float eps, float weight_decay, float lambda, int64_t t, int64_t n);

// AdamS (METHODS 5.3): m = b1 m + (1 - b1) g; u = (1 - alpha) m + alpha lambda sign(w) where
// M = 0, u = m elsewhere; v = b2 v + (1 - b2) u^2; w -= (lr / (1 - b1^t)) u / (sqrt(v) / sqrt(1 - b2^t) + eps).
// No decoupled weight decay.
void adams_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1,
                  float beta2, float eps, float alpha, float lambda, int64_t t, int64_t n);

// sqrt(sum x^2) in double over fixed chunks added in order (thread-count independent).
double global_norm(const float* x, int64_t n);

}  // namespace sieve::cpu
