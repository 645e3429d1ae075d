// mvue.h — MVUE24_approx on one group of four (METHODS 2.7), in single precision as the paper's
// kernel computes it. The CPU (cpu/sparsity.cc) and the CUDA kernel (cuda/sparsity.cu) run this
// same code, so both give the same bits: every operation is an IEEE single-precision one, and no
// product is fused into an add (the CPU builds with -ffp-contract=off; nvcc would fuse, hence mul_rn).
#pragma once

#include <cmath>
#include <cstdint>

#include "core/rng.h"

namespace sieve {

constexpr float kMvueEps = 0x1.0p-23f;  // 1.19209e-7, METHODS 2.7

SIEVE_HOST_DEVICE inline float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

// v[i] for a run-time i without indexing a local array (which a GPU would put in local memory).
SIEVE_HOST_DEVICE inline float pick(const float (&v)[4], int i) {
  return i == 0 ? v[0] : i == 1 ? v[1] : i == 2 ? v[2] : v[3];
}

// One group's a_i = |x_i| + eps, S = sum a_i, R_i = sum_{j != i} a_j (summed, not S - a_i: no
// cancellation when one entry dominates), and the quotients every p_i is made of: q_i = a_i / S and
// t_i = q_i / R_i, so that p_i = a_i / S + a_i sum_{j != i} (a_j / S) / (S - a_j) = q_i + a_i sum_{j != i} t_j.
// Once S is finite nothing overflows: a_i t_j = (a_i / R_j)(a_j / S) <= 1, as R_j holds a_i.
struct MvueGroup {
  float a[4], S = 0.0f, R[4], q[4], t[4];
  SIEVE_HOST_DEVICE explicit MvueGroup(const float (&x)[4]) {
    for (int i = 0; i < 4; i++) S += (a[i] = std::fabs(x[i]) + kMvueEps);
    for (int i = 0; i < 4; i++) {
      R[i] = 0.0f;
      for (int j = 0; j < 4; j++)
        if (j != i) R[i] += a[j];
      q[i] = a[i] / S;
      t[i] = q[i] / R[i];
    }
  }
  SIEVE_HOST_DEVICE float p(int i) const {
    float second = 0.0f;
    for (int j = 0; j < 4; j++)
      if (j != i) second += t[j];
    return pick(q, i) + mul_rn(pick(a, i), second);
  }
};

// The two uniforms in [0, 1) of a group's draw: its top 24 bits and the 24 below them, times 2^-24
// (exact in single precision).
SIEVE_HOST_DEVICE inline float unit_high(uint64_t draw) { return (float)(draw >> 40) * 0x1.0p-24f; }
SIEVE_HOST_DEVICE inline float unit_low(uint64_t draw) { return (float)((draw >> 16) & 0xFFFFFFu) * 0x1.0p-24f; }

// y = the estimate of x from one 64-bit draw: x_i / p_i at the two drawn positions, 0 elsewhere.
// A group whose S is not finite (an entry NaN or infinite, or magnitudes past single precision's
// range) has nothing to estimate and is passed on as it is.
SIEVE_HOST_DEVICE inline void mvue24_group(float (&y)[4], const float (&x)[4], uint64_t draw) {
  const MvueGroup group(x);
  if (!std::isfinite(group.S)) {
    for (int i = 0; i < 4; i++) y[i] = x[i];
    return;
  }
  // first index with P(i) = a_i / S
  const float u1 = mul_rn(unit_high(draw), group.S);
  int i1 = 3;
  float acc = 0.0f;
  for (int i = 0; i < 4; i++) {
    acc += group.a[i];
    if (u1 < acc) {
      i1 = i;
      break;
    }
  }
  // second from the other three with P(j) ~ a_j
  const float u2 = mul_rn(unit_low(draw), pick(group.R, i1));
  int i2 = i1 == 3 ? 2 : 3;
  acc = 0.0f;
  for (int j = 0; j < 4; j++) {
    if (j == i1) continue;
    acc += group.a[j];
    if (u2 < acc) {
      i2 = j;
      break;
    }
  }
  const float v1 = pick(x, i1) / group.p(i1), v2 = pick(x, i2) / group.p(i2);
  for (int i = 0; i < 4; i++) y[i] = i == i1 ? v1 : i == i2 ? v2 : 0.0f;
}

}  // namespace sieve
