// transform.cc — the weight-transform kinds on the CPU. Each kind is one case per switch below.
#include "transform.h"

#include "common.h"

namespace sieve::cpu {

TransformState transform_setup(const SeamSpec& spec, const float* w, int64_t n) {
  (void)spec;
  (void)w;
  (void)n;
  return {};  // none and mask keep no state
}

void transform_forward(float* wt, const float* w, const float* mask, const SeamSpec& spec,
                       const TransformState& state, int64_t n) {
  (void)state;
  switch (spec.kind) {
    case SIEVE_TRANSFORM_NONE:  // a copy: used when a fused GEMM needs W~ of a neighbour
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) wt[i] = w[i];
      return;
    case SIEVE_TRANSFORM_MASK:  // W~ = M (.) W
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) wt[i] = mask[i] * w[i];
      return;
  }
}

void transform_backward(float* dw, const float* dwt, const float* w, const float* mask, const SeamSpec& spec,
                        const TransformState& state, int64_t n) {
  (void)w;
  (void)mask;
  (void)state;
  switch (spec.kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK:  // straight-through: dW += dW~ (pruned entries included)
      if (dw == dwt) return;    // already accumulated in place by the GEMM
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) dw[i] += dwt[i];
      return;
  }
}

}  // namespace sieve::cpu
