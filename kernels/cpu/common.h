// common.h — shared helpers of the CPU backend: threading, and the few numeric primitives
// every op uses. Errors are the core's (core/error.h): throw through fail() / SIEVE_CHECK,
// never from inside an OpenMP region.
//
// Promises:
//   - Every reduction here has an order that depends only on its length, never on the
//     thread count (16 fixed lanes, combined in a fixed order), so results are bit-stable.
//   - exp_f32 is pure IEEE arithmetic (no libm, no FMA contraction: the build uses
//     -ffp-contract=off), so it vectorizes and gives the same bits on every x86-64.
#pragma once

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "sieve.h"

namespace sieve::cpu {

// Sets the calling thread's OpenMP team size for the lifetime of the scope.
class ThreadScope {
 public:
  explicit ThreadScope(int threads) : saved_(omp_get_max_threads()) { omp_set_num_threads(threads); }
  ~ThreadScope() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Accumulated GEMM time and work of a model (benchmark hooks); nullable everywhere.
struct GemmStats {
  double seconds = 0;
  double flops = 0;
};

// ---- fixed-order reductions (16 lanes; the lane loop vectorizes, the order is fixed)

constexpr int kLanes = 16;

inline float sum_f32(const float* x, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += x[i + j];
  for (int j = 0; i < n; i++, j++) acc[j] += x[i];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

inline float dot_f32(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += a[i + j] * b[i + j];
  for (int j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

// The maximum is exact in any order; the lanes only let it vectorize. NaNs are ignored
// unless every element is NaN (softmax inputs are finite).
inline float max_f32(const float* x, int64_t n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; j++) acc[j] = x[0];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  for (int j = 0; i < n; i++, j++) acc[j] = x[i] > acc[j] ? x[i] : acc[j];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; j++) acc[j] = acc[j + w] > acc[j] ? acc[j + w] : acc[j];
  return acc[0];
}

// ---- exp without libm: Cody-Waite range reduction and a degree-6 polynomial (Cephes
// expf coefficients), about 1 ulp on [-87, 88]. Inputs below -87 give exactly 0
// (softmax tails), above 88 give +inf (never reached by softmax, whose inputs are <= 0).
inline float exp_f32(float x) {
  const float hi = 88.0f, lo = -87.0f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  // n = round(x / ln 2) with the 1.5 * 2^23 trick (exact under round-to-nearest)
  const float shifter = 12582912.0f;
  float n = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float e = p * r2 + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  float y = e * scale;
  y = x < lo ? 0.0f : y;
  y = x > hi ? __builtin_inff() : y;
  return y;
}

inline float sigmoid_f32(float x) { return 1.0f / (1.0f + exp_f32(-x)); }

// tanh from exp: 1 - 2 / (exp(2x) + 1); exact limits at +-inf, |error| ~ 1e-7.
inline float tanh_f32(float x) { return 1.0f - 2.0f / (exp_f32(2.0f * x) + 1.0f); }

}  // namespace sieve::cpu
