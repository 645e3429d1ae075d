// transform.h — the maths of the weight-transform seam on the CPU: W~ = f(W) per linear
// weight tensor. The kinds, their parameter checks and their properties (identity,
// straight-through, reads the mask, reads the scales) are the core's contract (core/seams.h).
//
// The forward of a linear layer multiplies by W~; the backward produces dW~ and hands it
// to transform_backward, which must add the gradient of W into dW (and of the tensor's
// scale adapter into dA, for SCALE). Straight-through kinds pass dW~ unchanged
// (dW += dW~), which lets the model accumulate the weight-gradient GEMM directly into dW
// without a scratch buffer.
//
// Adding a kind touches core/seams.cc for its contract and this file and transform.cc for
// its maths. A kind may keep per-tensor state that transform_setup derives from the dense
// weights when the kind is set (none does today: S-STE's fixed beta is a parameter the
// caller computed once, so it survives checkpoints).
#pragma once

#include <cstdint>
#include <vector>

#include "core/layout.h"

namespace sieve::cpu {

// Derived by transform_setup; empty for every kind today.
using TransformState = std::vector<float>;

// What a kind reads besides its parameters: the dense weight, its mask and scale adapter
// (null when the tensor has none), and its shape.
struct TransformInputs {
  const float* w;      // (R, K)
  const float* mask;   // (R, K) or null
  const float* scale;  // (R, SG) or null
  int64_t R, K, SG;    // SG = 0 without a scale adapter
};

// Called when the kind is set on a tensor, with its current dense weights.
TransformState transform_setup(const SeamSpec& spec, const TransformInputs& in);

void transform_forward(float* wt /* (R, K) */, const TransformInputs& in, const SeamSpec& spec,
                       const TransformState& state);
// dw += dW of the kind (dw may be dwt itself for straight-through kinds: then nothing to do);
// dscale += dA for SCALE (null otherwise).
void transform_backward(float* dw /* (R, K) += */, float* dscale /* (R, SG) += or null */,
                        const float* dwt /* (R, K) */, const TransformInputs& in, const SeamSpec& spec,
                        const TransformState& state);

}  // namespace sieve::cpu
