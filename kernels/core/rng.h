// rng.h — the portable random numbers of parameter initialisation (core/init.cc) and of
// MVUE's sampling (the keys below; every backend draws the same numbers).
//
// SplitMix64 (Steele, Lea & Flood, 2014) used as a counter-based generator: the k-th
// 64-bit draw of a stream with key s is mix(s + (k + 1) * 0x9E3779B97F4A7C15). Each tensor
// has its own stream, keyed by the seed and the FNV-1a hash of its name, so a tensor's
// values depend only on (seed, name, index): not on the thread count, not on the order of
// the tensor table. Normals come in pairs from Box-Muller in double:
//   u1 = (draw[2k] >> 11 + 1) 2^-53 in (0, 1],  u2 = (draw[2k+1] >> 11) 2^-53 in [0, 1)
//   element 2k = sqrt(-2 ln u1) cos(2 pi u2),  element 2k + 1 = sqrt(-2 ln u1) sin(2 pi u2)
// The integer part is exact everywhere; the transform relies on the C library's double
// log/cos/sin, which agree to the last float bit on every mainstream libm in practice.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace sieve {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;

// Callable from CUDA kernels as well: the GPU's draws are these, bit for bit.
#ifdef __CUDACC__
#define SIEVE_HOST_DEVICE __host__ __device__
#else
#define SIEVE_HOST_DEVICE
#endif

SIEVE_HOST_DEVICE inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ULL;
  }
  return h;
}

// The key of a tensor's stream.
inline uint64_t stream_key(uint64_t seed, const std::string& name) { return splitmix64_mix(seed ^ fnv1a64(name)); }

// The k-th draw (k = 0, 1, ...) of the stream with key s.
SIEVE_HOST_DEVICE inline uint64_t stream_draw(uint64_t s, uint64_t k) { return splitmix64_mix(s + (k + 1) * kGolden); }

// Elements 2k and 2k + 1 of the standard-normal sequence of the stream with key s.
struct NormalPair {
  double even, odd;
};
inline NormalPair stream_normal_pair(uint64_t s, uint64_t k) {
  const double u1 = (double)((stream_draw(s, 2 * k) >> 11) + 1) * 0x1.0p-53;
  const double u2 = (double)(stream_draw(s, 2 * k + 1) >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 6.283185307179586 * u2;
  return {r * std::cos(a), r * std::sin(a)};
}

// The key of a linear weight's MVUE draws in one forward_backward (sieve_model_set_mvue):
// mix(mix(mix(mix(seed) + step) + micro) + tensor), with step the optimizer steps taken and
// micro the forward_backward calls since the last zero_grad. Every backend uses this key,
// so a resumed run draws the numbers the uninterrupted one drew.
inline uint64_t mvue_key(uint64_t seed, int64_t step, int64_t micro, int64_t tensor) {
  uint64_t k = splitmix64_mix(seed);
  k = splitmix64_mix(k + (uint64_t)step);
  k = splitmix64_mix(k + (uint64_t)micro);
  return splitmix64_mix(k + (uint64_t)tensor);
}

// The key of column d's stream inside sieve_mvue24: its group q takes draw q (core/mvue.h).
SIEVE_HOST_DEVICE inline uint64_t mvue_column_key(uint64_t seed, int64_t d) {
  return splitmix64_mix(seed + (uint64_t)(d + 1) * 0xD1B54A32D192ED03ULL);
}

}  // namespace sieve
