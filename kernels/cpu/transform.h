// transform.h — the maths of the weight-transform seam on the CPU: W~ = f(W) per linear
// weight tensor. The kinds, their parameter checks and their properties (identity,
// straight-through, reads the mask) are the core's contract (core/seams.h).
//
// The forward of a linear layer multiplies by W~; the backward produces dW~ and hands it
// to transform_backward, which must add the gradient of W into dW. Straight-through kinds
// pass dW~ unchanged (dW += dW~), which lets the model accumulate the weight-gradient GEMM
// directly into dW without a scratch buffer.
//
// Adding a kind (S-STE soft threshold with a per-tensor scale, learned row scales, ...)
// touches core/seams.cc for its contract and this file and transform.cc for its maths. A
// kind may keep per-tensor state that transform_setup derives from the dense weights when
// the kind is set (e.g. S-STE's fixed beta, computed once from W).
#pragma once

#include <cstdint>
#include <vector>

#include "core/layout.h"

namespace sieve::cpu {

// Derived by transform_setup; empty for none and mask.
using TransformState = std::vector<float>;

// Called when the kind is set on a tensor, with its current dense weights.
TransformState transform_setup(const SeamSpec& spec, const float* w /* (n) */, int64_t n);

void transform_forward(float* wt /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                       const SeamSpec& spec, const TransformState& state, int64_t n);
void transform_backward(float* dw /* (n) += */, const float* dwt /* (n) */, const float* w /* (n) */,
                        const float* mask /* (n) */, const SeamSpec& spec, const TransformState& state, int64_t n);

}  // namespace sieve::cpu
