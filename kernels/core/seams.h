// seams.h — the contract of the three per-tensor seams the 2:4 methods plug into: the
// weight transform (W~ = f(W) in a linear layer's forward), the gradient hook (after
// clipping, before the update) and the update rule (one per parameter group).
//
// Here: each kind's name, its parameter check, and the properties a backend plans with
// (does the kind read the mask buffer, is it the identity, does its gradient pass straight
// through, does it keep AdamW moments). The maths of each kind lives in every backend
// (kernels/cpu/transform.cc, grad_hook.cc, update_rule.cc), which must honour these
// properties. Adding a kind: a SIEVE_* number in sieve.h, a case in each switch of
// seams.cc, and its maths in every backend.
#pragma once

#include <cstdint>
#include <string>

#include "layout.h"

namespace sieve {

// n_params in [0, 64]; params non-NULL when n_params > 0.
void check_seam_params(const float* params, int64_t n_params);

// ---- weight transform (SIEVE_TRANSFORM_*); linear weights only

const char* transform_name(int32_t kind);
// Throws a clear error for an unknown kind or a wrong parameter count/value.
void transform_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
// Throws a clear error when the kind cannot apply to this tensor of the table (SSTE: IC % 4;
// SCALE: the tensor has a scale adapter).
void transform_check_tensor(int32_t kind, const TensorEntry& t);
// true: W~ = W, so the forward can read W itself (no W~ buffer needed).
bool transform_is_identity(int32_t kind);
// true: dW += dW~ exactly, so the weight-gradient GEMM may accumulate straight into dW.
bool transform_is_straight_through(int32_t kind);
bool transform_uses_mask(int32_t kind);
// true: the kind reads the tensor's scale adapter (and its backward writes that adapter's gradient).
bool transform_uses_scale(int32_t kind);

// ---- gradient hook (SIEVE_HOOK_*)

const char* grad_hook_name(int32_t kind);
void grad_hook_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
bool grad_hook_uses_mask(int32_t kind);

// ---- update rule (SIEVE_RULE_*)

const char* update_rule_name(int32_t kind);
void update_rule_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
bool update_rule_uses_mask(int32_t kind);
// true: the rule reads and writes the AdamW moment buffers (m, v).
bool update_rule_uses_moments(int32_t kind);

}  // namespace sieve
