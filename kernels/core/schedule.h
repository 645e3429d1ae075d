// schedule.h — the learning-rate schedule of sieve_lr_at: pure maths, the same for every backend.
#pragma once

#include <cmath>
#include <cstdint>

namespace sieve {

// Warm-up + cosine: step < warmup: peak (step + 1) / warmup; step >= total: min;
// otherwise min + (peak - min) (1 + cos(pi (step - warmup) / (total - warmup))) / 2.
inline double lr_at(int64_t step, double peak, double min, int64_t warmup, int64_t total) {
  if (step < warmup) return peak * (double)(step + 1) / (double)warmup;
  if (step >= total) return min;
  const double progress = (double)(step - warmup) / (double)(total - warmup);
  return min + (peak - min) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace sieve
