// transform.cc — the weight-transform kinds on the CPU. Each kind is one case per switch below.
#include "transform.h"

#include "common.h"
#include "sparsity.h"

namespace sieve::cpu {

TransformState transform_setup(const SeamSpec& spec, const TransformInputs& in) {
  (void)spec;
  (void)in;
  return {};  // no kind keeps state
}

void transform_forward(float* wt, const TransformInputs& in, const SeamSpec& spec, const TransformState& state) {
  (void)state;
  const int64_t n = in.R * in.K;
  const float* w = in.w;
  switch (spec.kind) {
    case SIEVE_TRANSFORM_NONE:  // a copy: used when a fused GEMM needs W~ of a neighbour
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) wt[i] = w[i];
      return;
    case SIEVE_TRANSFORM_MASK: {  // W~ = M (.) W
      const float* mask = in.mask;
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) wt[i] = mask[i] * w[i];
      return;
    }
    case SIEVE_TRANSFORM_SSTE:  // W~ = beta S(W), groups of 4 along K
      sste_threshold(wt, w, spec.params[0], n);
      return;
    case SIEVE_TRANSFORM_SCALE:  // W~[d, c] = A[d, c / (K / SG)] W[d, c]
      weight_scale_forward(wt, w, in.scale, in.R, in.K, in.SG);
      return;
  }
}

void transform_backward(float* dw, float* dscale, const float* dwt, const TransformInputs& in, const SeamSpec& spec,
                        const TransformState& state) {
  (void)state;
  const int64_t n = in.R * in.K;
  switch (spec.kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK:  // straight-through: dW += dW~ (pruned entries included)
    case SIEVE_TRANSFORM_SSTE:  // straight-through: no beta, no mask, no Jacobian of S (METHODS 3.4)
      if (dw == dwt) return;    // already accumulated in place by the GEMM
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; i++) dw[i] += dwt[i];
      return;
    case SIEVE_TRANSFORM_SCALE:  // dW += A (.) dW~, dA += sum over each segment of dW~ (.) W
      weight_scale_backward(dw, dscale, dwt, in.w, in.scale, in.R, in.K, in.SG);
      return;
  }
}

}  // namespace sieve::cpu
