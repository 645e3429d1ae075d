// rope.h — RoPE's cos/sin tables (LLaMA), computed on the host in double: every backend
// uploads the same floats, so their rotations agree bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

namespace sieve {

// angle t * theta^(-2i/HS) for t < T, i < HS/2.
inline void rope_tables(float* cos_t /* (T, HS/2) */, float* sin_t /* (T, HS/2) */, double theta, int64_t T,
                        int64_t HS) {
  const int64_t half = HS / 2;
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < half; i++) {
      const double freq = std::pow(theta, -2.0 * (double)i / (double)HS);
      const double angle = (double)t * freq;
      cos_t[t * half + i] = (float)std::cos(angle);
      sin_t[t * half + i] = (float)std::sin(angle);
    }
}

}  // namespace sieve
