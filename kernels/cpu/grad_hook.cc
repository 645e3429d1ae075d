// grad_hook.cc — the gradient-hook kinds on the CPU.
#include "grad_hook.h"

#include "common.h"

namespace sieve::cpu {

void grad_hook_apply(float* grad, const float* w, const float* mask, const SeamSpec& spec, int64_t n) {
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
