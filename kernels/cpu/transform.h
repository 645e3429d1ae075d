// transform.h — the weight-transform seam: W~ = f(W) per linear weight tensor.
//
// The forward of a linear layer multiplies by W~; the backward produces dW~ and hands it
// to transform_backward, which must add the gradient of W into dW. Kinds marked
// straight-through pass dW~ unchanged (dW += dW~), which lets the model accumulate the
// weight-gradient GEMM directly into dW without a scratch buffer.
//
// Adding a kind (S-STE soft threshold with a per-tensor scale, learned row scales, ...)
// touches this file and transform.cc only: a SIEVE_TRANSFORM_* number in sieve.h, a case
// in each switch. A kind may keep per-tensor state (TransformSpec::state) that
// transform_setup fills from the dense weights when the kind is set (e.g. S-STE's fixed
// beta, computed once from W).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sieve::cpu {

struct TransformSpec {
  int32_t kind = 0;           // SIEVE_TRANSFORM_*
  std::vector<float> params;  // given by the caller (validated by transform_validate)
  std::vector<float> state;   // derived by transform_setup
};

const char* transform_name(int32_t kind);
// Throws a clear error for an unknown kind or a wrong parameter count/value.
void transform_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor);
// Called once when the kind is set on a tensor, with its current dense weights.
void transform_setup(TransformSpec& spec, const float* w, int64_t n);
// true: the forward can read W itself (no W~ buffer needed).
bool transform_is_identity(int32_t kind);
// true: dW += dW~ exactly (the backward needs no scratch).
bool transform_is_straight_through(int32_t kind);
// Does the kind read the mask buffer?
bool transform_uses_mask(int32_t kind);

void transform_forward(float* wt /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                       const TransformSpec& spec, int64_t n);
void transform_backward(float* dw /* (n) += */, const float* dwt /* (n) */, const float* w /* (n) */,
                        const float* mask /* (n) */, const TransformSpec& spec, int64_t n);

}  // namespace sieve::cpu
