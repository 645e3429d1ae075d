// grad_hook.cc — the gradient-hook kinds.
#include "grad_hook.h"

#include <cmath>

#include "common.h"

namespace sieve::cpu {

const char* grad_hook_name(int32_t kind) {
  switch (kind) {
    case SIEVE_HOOK_NONE: return "none";
    case SIEVE_HOOK_MASKED_DECAY: return "masked-decay";
  }
  return "unknown";
}

void grad_hook_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  switch (kind) {
    case SIEVE_HOOK_NONE:
      SIEVE_CHECK(n_params == 0, "gradient hook 'none' of tensor '%s' takes no parameters, got %lld",
                  tensor.c_str(), (long long)n_params);
      return;
    case SIEVE_HOOK_MASKED_DECAY:
      SIEVE_CHECK(n_params == 1, "gradient hook 'masked-decay' of tensor '%s' takes one parameter (lambda), got %lld",
                  tensor.c_str(), (long long)n_params);
      SIEVE_CHECK(std::isfinite(params[0]) && params[0] >= 0.0f,
                  "masked-decay lambda of tensor '%s' must be a finite number >= 0, got %g", tensor.c_str(),
                  (double)params[0]);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown gradient hook kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

bool grad_hook_uses_mask(int32_t kind) { return kind == SIEVE_HOOK_MASKED_DECAY; }

void grad_hook_apply(float* grad, const float* w, const float* mask, const HookSpec& spec, int64_t n) {
  switch (spec.kind) {
    case SIEVE_HOOK_NONE: return;
    case SIEVE_HOOK_MASKED_DECAY: {
      // SR-STE masked decay on the gradient (METHODS 2.2): g += lambda (1 - M) (.) W.
      // Kept entries (M = 1) are left untouched, bit for bit (g + 0 would turn -0 into +0).
      const float lambda = spec.params[0];
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) grad[i] = mask[i] == 1.0f ? grad[i] : grad[i] + lambda * (1.0f - mask[i]) * w[i];
      return;
    }
  }
}

}  // namespace sieve::cpu
