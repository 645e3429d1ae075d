// update_rule.h — the update-rule seam: how one tensor (parameter group) moves given its
// gradient, and the optimizer arithmetic shared by the rules.
//
// Adding a rule (AST's decay-outside-momentum Adam, CAST's AdamS, ...) touches this file
// and update_rule.cc only: a SIEVE_RULE_* number in sieve.h and a case in each switch.
// A rule sees the tensor's weights, gradient, both moment buffers, its mask and the
// step's hyperparameters, so mask-aware rules need nothing else.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sieve::cpu {

struct RuleSpec {
  int32_t kind = 0;  // SIEVE_RULE_*
  std::vector<float> params;
};

struct StepHyper {
  float lr, beta1, beta2, eps, weight_decay;
  int64_t t;  // optimizer step, 1-based (bias correction)
};

const char* update_rule_name(int32_t kind);
void update_rule_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
bool update_rule_uses_mask(int32_t kind);
bool update_rule_uses_moments(int32_t kind);
// decay: whether decoupled weight decay applies to this tensor (sieve_tensor_info.decay)
void update_rule_apply(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                       const float* mask /* (n) */, bool decay, const StepHyper& hp, const RuleSpec& spec,
                       int64_t n);

// AdamW (Loshchilov & Hutter), PyTorch's order of operations:
//   w *= 1 - lr wd;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   w -= (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
void adamw_update(float* w, float* m, float* v, const float* grad, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t t, int64_t n);

// sqrt(sum x^2) in double over fixed chunks added in order (thread-count independent).
double global_norm(const float* x, int64_t n);

// The warm-up + cosine schedule of sieve_lr_at.
double lr_at(int64_t step, double peak, double min, int64_t warmup, int64_t total);

}  // namespace sieve::cpu
