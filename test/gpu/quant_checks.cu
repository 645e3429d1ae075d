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
#include "core/quant.h"
#include "cuda/device_buffer.cuh"
#include "cuda/quant.cuh"
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

// ---------------------------------------------------------------- GPTQ

namespace {

// H = X^T X of calibration rows with correlated, unevenly loud columns, and `dead` columns
// (H's row and column 0: inputs that never fired).
std::vector<double> hessian(int64_t n, const std::vector<int64_t>& dead) {
  const int64_t N = n + 16;
  const std::vector<float> f = gc::normal(N * 4), mix = gc::normal(4 * n), e = gc::normal(N * n, 0.3f);
  std::vector<double> x(N * n);
  for (int64_t r = 0; r < N; r++)
    for (int64_t c = 0; c < n; c++) {
      double v = e[r * n + c];
      for (int k = 0; k < 4; k++) v += f[r * 4 + k] * mix[k * n + c];
      x[r * n + c] = v * (1.0 + (double)(c % 5));
    }
  for (int64_t c : dead)
    for (int64_t r = 0; r < N; r++) x[r * n + c] = 0.0;
  std::vector<double> H(n * n, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t a = 0; a < n; a++)
    for (int64_t r = 0; r < N; r++)
      for (int64_t b = 0; b < n; b++) H[a * n + b] += x[r * n + a] * x[r * n + b];
  return H;
}

Quantized gptq(gc::Check& c, int32_t device, const std::vector<float>& w, const std::vector<double>& H, const float* mask,
               int64_t rows, int64_t cols, int32_t bits, int64_t group, int32_t sym, int32_t act_order) {
  Quantized q{std::vector<uint8_t>(rows * cols), std::vector<uint8_t>(rows * cols / group),
              std::vector<float>(rows * cols / group)};
  ok(c, sieve_gptq(device, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), H.data(), mask, rows, cols, bits,
                   group, sym, 0.01, act_order),
     device == SIEVE_DEVICE_CUDA ? "sieve_gptq(cuda)" : "sieve_gptq(cpu)");
  return q;
}

void same_quantized(gc::Check& c, const std::string& what, const Quantized& out, const Quantized& ref) {
  same_bits(c, what + " codes", out.codes, ref.codes);
  same_bits(c, what + " scales", out.scales, ref.scales);
  same_bits(c, what + " zeros", out.zeros, ref.zeros);
}

// rows not a multiple of the rows per block, cols not of the block; groups of 32 ... whole rows
const Shape kGptqShapes[] = {{37, 96, 32}, {13, 320, 64}, {70, 384, 128}, {9, 200, 200}, {300, 1000, 1000}};

}  // namespace

SIEVE_GPU_CHECK(gptq_matches_cpu) {
  int64_t cases = 0;
  for (const Shape& s : kGptqShapes) {
    const std::vector<double> H = hessian(s.cols, {1, s.cols / 2, s.cols - 1});
    for (int32_t act_order : {0, 1})
      for (int masking = 0; masking < 3; masking++)
        for (int32_t sym : {0, 1})
          for (int32_t bits : {2, 3, 4, 8}) {
            if (s.cols == 1000 && bits != 3) continue;  // the large shape once per setting
            const std::vector<float> w = weights(s.rows, s.cols, s.group);
            const std::vector<float> m = masking == 1 ? random_mask(s.rows * s.cols) : mask24(s.rows, s.cols, s.group);
            const float* mask = masking ? m.data() : nullptr;
            const std::string what = std::to_string(s.rows) + "x" + std::to_string(s.cols) + "/" +
                                     std::to_string(s.group) + " bits " + std::to_string(bits) +
                                     (sym ? " sym" : " asym") + (act_order ? " act_order" : "") +
                                     (masking == 0 ? "" : masking == 1 ? " mask" : " 2:4");
            same_quantized(c, what, gptq(c, SIEVE_DEVICE_CUDA, w, H, mask, s.rows, s.cols, bits, s.group, sym, act_order),
                           gptq(c, SIEVE_DEVICE_CPU, w, H, mask, s.rows, s.cols, bits, s.group, sym, act_order));
            cases++;
          }
  }
  c.expect(cases == 4 * 2 * 3 * 2 * 4 + 2 * 3 * 2, "every case ran");
}

// The rows' working weights in global scratch (what a row too long for shared memory uses),
// forced by a shared-memory limit of 0, against the CPU.
SIEVE_GPU_CHECK(gptq_without_shared_memory_matches_cpu) {
  using sieve::cuda::DeviceBuffer;
  using sieve::cuda::to_device;
  for (const Shape& s : {kGptqShapes[0], kGptqShapes[2], kGptqShapes[3]})
    for (int32_t act_order : {0, 1}) {
      const int32_t bits = 4, sym = act_order;
      const std::vector<double> H = hessian(s.cols, {2});
      const std::vector<float> w = weights(s.rows, s.cols, s.group), m = random_mask(s.rows * s.cols);
      const Quantized ref = gptq(c, SIEVE_DEVICE_CPU, w, H, m.data(), s.rows, s.cols, bits, s.group, sym, act_order);
      const sieve::QuantGrid grid{bits, s.group, sym == 1};
      const sieve::GptqPlan plan = sieve::gptq_plan(H.data(), s.cols, 0.01, act_order == 1);
      const int64_t G = s.rows * s.cols / s.group;
      std::vector<float> scales(G);
      std::vector<uint8_t> zeros(G);
      if (plan.static_groups) sieve::gptq_static_groups(scales.data(), zeros.data(), w.data(), m.data(), plan, s.rows, grid);
      const DeviceBuffer<float> dw = to_device(w), dm = to_device(m);
      const DeviceBuffer<double> dU = to_device(plan.U);
      const DeviceBuffer<int64_t> dperm = to_device(plan.perm);
      const DeviceBuffer<uint8_t> ddead = to_device(std::vector<uint8_t>(plan.dead.begin(), plan.dead.end()));
      DeviceBuffer<float> dscales = to_device(scales);
      DeviceBuffer<uint8_t> dzeros = to_device(zeros), dcodes(s.rows * s.cols);
      DeviceBuffer<double> scratch(sieve::cuda::gptq_scratch(s.rows, s.cols, 0));
      c.expect(scratch.size() == s.rows * s.cols, "no shared memory: the scratch holds every row");
      sieve::cuda::gptq(dcodes.get(), dscales.get(), dzeros.get(), dw.get(), dm.get(),
                        {dU.get(), dperm.get(), ddead.get(), s.cols, plan.static_groups}, s.rows, grid, scratch.get(), 0,
                        0);
      same_quantized(c, std::to_string(s.rows) + "x" + std::to_string(s.cols) + (act_order ? " act_order" : "") +
                            " in global memory",
                     Quantized{dcodes.download(), dzeros.download(), dscales.download()}, ref);
    }
}
