// transform.cc — the weight-transform kinds. Each kind is one case per switch below.
#include "transform.h"

#include "common.h"

namespace sieve::cpu {

const char* transform_name(int32_t kind) {
  switch (kind) {
    case SIEVE_TRANSFORM_NONE: return "none";
    case SIEVE_TRANSFORM_MASK: return "mask";
  }
  return "unknown";
}

void transform_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  (void)params;
  switch (kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK:
      SIEVE_CHECK(n_params == 0, "transform '%s' of tensor '%s' takes no parameters, got %lld",
                  transform_name(kind), tensor.c_str(), (long long)n_params);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown weight transform kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

void transform_setup(TransformSpec& spec, const float* w, int64_t n) {
  (void)w;
  (void)n;
  spec.state.clear();  // none and mask keep no state
}

bool transform_is_identity(int32_t kind) { return kind == SIEVE_TRANSFORM_NONE; }

bool transform_is_straight_through(int32_t kind) {
  switch (kind) {
    case SIEVE_TRANSFORM_NONE:
    case SIEVE_TRANSFORM_MASK: return true;
  }
  return false;
}

bool transform_uses_mask(int32_t kind) { return kind == SIEVE_TRANSFORM_MASK; }

void transform_forward(float* wt, const float* w, const float* mask, const TransformSpec& spec, int64_t n) {
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

void transform_backward(float* dw, const float* dwt, const float* w, const float* mask, const TransformSpec& spec,
                        int64_t n) {
  (void)w;
  (void)mask;
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
