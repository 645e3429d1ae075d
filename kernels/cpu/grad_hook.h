// grad_hook.h — the maths of the gradient-hook seam on the CPU: a per-tensor edit of the
// gradient applied after global-norm clipping and before the update rule (so clipping
// never shrinks it). The kinds and their checks are the core's contract (core/seams.h);
// adding a kind touches core/seams.cc and a case here and in grad_hook.cc.
#pragma once

#include <cstdint>

#include "core/layout.h"

namespace sieve::cpu {

void grad_hook_apply(float* grad /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                     const SeamSpec& spec, int64_t n);

}  // namespace sieve::cpu
