// quant_checks.cu — weight-only quantization on device cuda against device cpu, through the C
// API (sieve_quantize_rtn / sieve_dequantize with SIEVE_DEVICE_CUDA, so the core's checks and the
// CUDA Backend's copies are in the path): codes, scales, zero points and dequantized values bit
// for bit.
//
// Inputs that would expose a different rounding: weights on a few levels (exact halves of the
// scale: round half to even), zeros and -0, subnormal and large weights, whole groups of zeros and
// fully masked groups; random masks and 2:4 masks; bits 2, 3, 4, 8; symmetric and asymmetric;
// groups of 32, 64, 128, 4 and whole rows, with rows and cols that are not multiples of a warp or
// a block.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "sieve.h"

namespace {

namespace gc = sieve::gpu_check;

void ok(gc::Check& c, int status, const std::string& call) {
  c.expect(status == SIEVE_OK, call + " failed: " + sieve_last_error());
}

// Bitwise equality of two arrays, naming the first difference.
template <class T>
void same_bits(gc::Check& c, const std::string& what, const std::vector<T>& out, const std::vector<T>& ref) {
  size_t diff = 0, first = 0;
  for (size_t i = 0; i < ref.size(); i++)
    if (std::memcmp(&out[i], &ref[i], sizeof(T)) != 0 && diff++ == 0) first = i;
  if (diff)
    c.expect(false, what + ": " + std::to_string(diff) + " of " + std::to_string(ref.size()) + " differ (first at " +
                        std::to_string(first) + ": " + std::to_string((double)out[first]) + " vs " +
                        std::to_string((double)ref[first]) + ")");
}

// Weights with everything that separates exact rounding from its shortcuts.
std::vector<float> weights(int64_t rows, int64_t cols, int64_t group) {
  std::vector<float> w = gc::normal(rows * cols), ties = gc::with_ties(rows * cols);
  std::uniform_int_distribution<int> kind(0, 15);
  for (int64_t i = 0; i < rows * cols; i++) {
    const int k = kind(gc::rng());
    w[i] = k < 6 ? ties[i] : k == 6 ? 0.0f : k == 7 ? -0.0f : k == 8 ? w[i] * 1e-40f /* subnormal */ : k == 9 ? w[i] * 1e3f : w[i];
  }
  // a group of zeros and a group of subnormals (scale 1; scale subnormal)
  for (int64_t i = 0; i < group && rows > 1; i++) w[i] = 0.0f, w[cols + i] = (float)(i % 3) * 1e-41f;
  return w;
}

std::vector<float> random_mask(int64_t n) {
  std::bernoulli_distribution keep(0.6);
  std::vector<float> m(n);
  for (auto& x : m) x = keep(gc::rng()) ? 1.0f : (keep(gc::rng()) ? 0.0f : -0.0f);
  return m;
}

// Exactly 2 of every 4 consecutive columns kept; the first group of the last row fully masked.
std::vector<float> mask24(int64_t rows, int64_t cols, int64_t group) {
  std::vector<float> m(rows * cols, 0.0f);
  std::uniform_int_distribution<int> pattern(0, 5);
  static const int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  for (int64_t i = 0; i + 4 <= rows * cols; i += 4) {
    const int p = pattern(gc::rng());
    m[i + kPairs[p][0]] = m[i + kPairs[p][1]] = 1.0f;
  }
  for (int64_t i = 0; i < group; i++) m[(rows - 1) * cols + i] = 0.0f;
  return m;
}

struct Quantized {
  std::vector<uint8_t> codes, zeros;
  std::vector<float> scales;
};

Quantized rtn(gc::Check& c, int32_t device, const std::vector<float>& w, const float* mask, int64_t rows, int64_t cols,
              int32_t bits, int64_t group, int32_t sym) {
  Quantized q{std::vector<uint8_t>(rows * cols), std::vector<uint8_t>(rows * cols / group),
              std::vector<float>(rows * cols / group)};
  ok(c, sieve_quantize_rtn(device, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), mask, rows, cols, bits,
                           group, sym),
     device == SIEVE_DEVICE_CUDA ? "sieve_quantize_rtn(cuda)" : "sieve_quantize_rtn(cpu)");
  return q;
}

std::vector<float> dequant(gc::Check& c, int32_t device, const Quantized& q, int64_t rows, int64_t cols, int32_t bits,
                           int64_t group) {
  std::vector<float> out(rows * cols);
  ok(c, sieve_dequantize(device, out.data(), q.codes.data(), q.scales.data(), q.zeros.data(), rows, cols, bits, group),
     "sieve_dequantize");
  return out;
}

struct Shape {
  int64_t rows, cols, group;
};
// group 32 / 64 / 128 / 4 / whole rows; rows and cols off the warp and block sizes
const Shape kShapes[] = {{37, 96, 32}, {19, 320, 64}, {5, 384, 128}, {33, 200, 200}, {3, 1000, 1000}, {71, 12, 4},
                         {1, 128, 32}};

}  // namespace

SIEVE_GPU_CHECK(quantize_rtn_matches_cpu) {
  int64_t cases = 0;
  for (const Shape& s : kShapes)
    for (int32_t bits : {2, 3, 4, 8})
      for (int32_t sym : {0, 1})
        for (int masking = 0; masking < 3; masking++) {
          const std::vector<float> w = weights(s.rows, s.cols, s.group);
          const std::vector<float> m = masking == 1 ? random_mask(s.rows * s.cols) : mask24(s.rows, s.cols, s.group);
          const float* mask = masking ? m.data() : nullptr;
          const Quantized ref = rtn(c, SIEVE_DEVICE_CPU, w, mask, s.rows, s.cols, bits, s.group, sym);
          const Quantized out = rtn(c, SIEVE_DEVICE_CUDA, w, mask, s.rows, s.cols, bits, s.group, sym);
          const std::string what = std::to_string(s.rows) + "x" + std::to_string(s.cols) + "/" +
                                   std::to_string(s.group) + " bits " + std::to_string(bits) + (sym ? " sym" : " asym") +
                                   (masking == 0 ? "" : masking == 1 ? " mask" : " 2:4");
          same_bits(c, what + " codes", out.codes, ref.codes);
          same_bits(c, what + " scales", out.scales, ref.scales);
          same_bits(c, what + " zeros", out.zeros, ref.zeros);
          // and what they dequantize to, on both devices
          same_bits(c, what + " dequantized", dequant(c, SIEVE_DEVICE_CUDA, out, s.rows, s.cols, bits, s.group),
                    dequant(c, SIEVE_DEVICE_CPU, ref, s.rows, s.cols, bits, s.group));
          cases++;
        }
  c.expect(cases == 7 * 4 * 2 * 3, "every case ran");
}

// Codes and zero points anywhere in range, scales from subnormal to large.
SIEVE_GPU_CHECK(dequantize_matches_cpu) {
  for (const Shape& s : kShapes)
    for (int32_t bits : {2, 3, 4, 8}) {
      const int64_t G = s.rows * s.cols / s.group;
      std::uniform_int_distribution<int> code(0, (1 << bits) - 1), kind(0, 7);
      Quantized q{std::vector<uint8_t>(s.rows * s.cols), std::vector<uint8_t>(G), gc::normal(G)};
      for (auto& x : q.codes) x = (uint8_t)code(gc::rng());
      for (auto& x : q.zeros) x = (uint8_t)code(gc::rng());
      for (auto& x : q.scales) {
        const int k = kind(gc::rng());
        x = std::fabs(x) * (k == 0 ? 1e-40f : k == 1 ? 1e30f : 1.0f) + (k == 2 ? 0.0f : 1e-45f);
        if (!(x > 0.0f)) x = 1e-45f;
      }
      same_bits(c, std::to_string(s.rows) + "x" + std::to_string(s.cols) + " bits " + std::to_string(bits),
                dequant(c, SIEVE_DEVICE_CUDA, q, s.rows, s.cols, bits, s.group),
                dequant(c, SIEVE_DEVICE_CPU, q, s.rows, s.cols, bits, s.group));
    }
}
