// grad_hook.h — the gradient-hook seam: a per-tensor edit of the gradient applied after
// global-norm clipping and before the update rule (so clipping never shrinks it).
//
// Adding a kind touches this file and grad_hook.cc only: a SIEVE_HOOK_* number in sieve.h
// and a case in each switch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sieve::cpu {

struct HookSpec {
  int32_t kind = 0;  // SIEVE_HOOK_*
  std::vector<float> params;
};

const char* grad_hook_name(int32_t kind);
void grad_hook_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
bool grad_hook_uses_mask(int32_t kind);
void grad_hook_apply(float* grad /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                     const HookSpec& spec, int64_t n);

}  // namespace sieve::cpu
