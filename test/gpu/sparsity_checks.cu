// sparsity_checks.cu — cuda/sparsity.cuh against cpu/sparsity.h (and cpu/grad_hook.h): every
// kernel on fresh random inputs, several shapes, ties and NaNs where the rule defines them,
// the 16-byte-aligned (vector) and the misaligned (scalar) paths, and the 2:4 invariants on
// the GPU's own outputs.
//
// Tolerances: none, except sste_dots (double sums in another order than the CPU's: 1e-12
// relative, with every term >= 0) and the weight scales' dA (1e-7: the same, rounded to float). Masks, S-STE (fp32, its bf16 rounding), the masked decay,
// MVUE and the counts are compared bit for bit; NaNs compare equal whatever their payload
// (the CPU's x86 NaN and the GPU's canonical NaN differ in bits, not in meaning).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "core/mvue.h"
#include "cpu/grad_hook.h"
#include "cpu/sparsity.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"
#include "cuda/sparsity.cuh"

namespace {

using sieve::cuda::DeviceBuffer;
namespace gc = sieve::gpu_check;

// A device copy of host data `shift` floats into its allocation: shift 1 makes every pointer
// misaligned for float4, so the kernels take their scalar path.
template <class T>
struct Dev {
  DeviceBuffer<T> buf;
  int shift;
  int64_t n;
  Dev(int64_t n_, int shift_ = 0) : buf(n_ + shift_), shift(shift_), n(n_) {}
  Dev(const std::vector<T>& host, int shift_ = 0) : Dev((int64_t)host.size(), shift_) {
    if (n) SIEVE_CUDA(cudaMemcpy(get(), host.data(), sizeof(T) * (size_t)n, cudaMemcpyHostToDevice));
  }
  T* get() const { return buf.get() + shift; }
  std::vector<T> download() const {
    std::vector<T> host((size_t)n);
    if (n) SIEVE_CUDA(cudaMemcpy(host.data(), get(), sizeof(T) * (size_t)n, cudaMemcpyDeviceToHost));
    return host;
  }
};

// Every NaN as the same quiet NaN, so c.equal compares meaning, not payload.
std::vector<float> canon(std::vector<float> v) {
  for (auto& x : v)
    if (std::isnan(x)) x = NAN;
  return v;
}

// Bitwise equality up to NaN payloads. A check compares many cases: a mismatch is reported
// through c.equal (count and first difference), a match only counted for the summary.
struct Cases {
  gc::Check& c;
  int64_t n = 0;
  void same(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref) {
    n++;
    const auto a = canon(out), b = canon(ref);
    if (a.size() != b.size() || std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) != 0) c.equal(what, a, b);
  }
  // The table's summary line: "<n> cases exact" (failures were recorded case by case).
  void summary() { c.equal(std::to_string(n) + " cases", {}, {}); }
};

// x with about one entry in `every` replaced by NaN (and, with inf, one in 4 of those by +-inf).
std::vector<float> sprinkle(std::vector<float> x, int every, bool inf = false) {
  std::uniform_int_distribution<int> pick(0, every - 1), kind(0, 3);
  for (auto& v : x)
    if (pick(gc::rng()) == 0) v = inf && kind(gc::rng()) == 0 ? (kind(gc::rng()) < 2 ? INFINITY : -INFINITY) : NAN;
  return x;
}

std::string shape_name(int64_t R, int64_t K, int shift) {
  return std::to_string(R) + "x" + std::to_string(K) + (shift ? " misaligned" : "");
}

// Groups of 4 along K (rows) or of 4 rows per column (cols) whose count of ones is not 2.
int64_t not_two_of_four(const std::vector<float>& mask, int64_t R, int64_t K, bool cols) {
  int64_t bad = 0;
  if (!cols) {
    for (int64_t g = 0; g < R * K / 4; g++)
      bad += (mask[4 * g] + mask[4 * g + 1] + mask[4 * g + 2] + mask[4 * g + 3]) != 2.0f;
  } else {
    for (int64_t i = 0; i < R / 4; i++)
      for (int64_t c = 0; c < K; c++) {
        const float* x = &mask[4 * i * K + c];
        bad += (x[0] + x[K] + x[2 * K] + x[3 * K]) != 2.0f;
      }
  }
  return bad;
}

struct Shape {
  int64_t R, K;
};
const Shape kShapes[] = {{4, 4}, {8, 12}, {12, 36}, {64, 100}, {132, 1028}, {768, 3072}};

// The inputs every mask and S-STE check runs: normal, with ties, with NaNs (and one all-NaN
// group), with NaNs and infinities.
std::vector<std::pair<const char*, std::vector<float>>> mask_inputs(int64_t n) {
  auto nans = sprinkle(gc::normal(n), 7);
  for (int i = 0; i < 4 && i < n; i++) nans[i] = NAN;
  return {{"normal", gc::normal(n)},
          {"ties", gc::with_ties(n)},
          {"NaN", nans},
          {"NaN+ties", sprinkle(gc::with_ties(n), 9)},
          {"NaN+inf", sprinkle(gc::normal(n), 5, true)}};
}

}  // namespace

SIEVE_GPU_CHECK(transposable_patterns_match_cpu) {
  const uint16_t* cpu = sieve::cpu::transposable_patterns();
  std::vector<float> gpu_bits(90), cpu_bits(90);
  for (int k = 0; k < 90; k++) {
    const uint16_t b = sieve::cuda::transposable_pattern_bits(k);
    gpu_bits[k] = (float)b;
    cpu_bits[k] = (float)cpu[k];
    for (int r = 0; r < 4; r++) {
      int row = 0, col = 0;
      for (int j = 0; j < 4; j++) row += (b >> (4 * r + j)) & 1, col += (b >> (4 * j + r)) & 1;
      c.expect(row == 2 && col == 2, "pattern " + std::to_string(k) + " is not two per row and column");
    }
    for (int j = 0; j < k; j++)
      c.expect(sieve::cuda::transposable_pattern_bits(j) != b, "pattern " + std::to_string(k) + " repeats");
  }
  c.equal("90 patterns, in order", gpu_bits, cpu_bits);
}

SIEVE_GPU_CHECK(mask24_magnitude_matches_cpu) {
  // METHODS 1.3's tie examples first: all equal keeps 2 and 3; |w| = (2, 1, 1, 0) keeps 0 and 2.
  {
    const std::vector<float> w = {0.5f, -0.5f, 0.5f, -0.5f, 2, -1, 1, 0, 0.9f, -0.1f, 0.4f, -0.7f};
    const std::vector<float> want = {0, 0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1};
    Dev<float> dw(w), dm(12);
    sieve::cuda::mask24_magnitude(dm.get(), dw.get(), 1, 12, 0);
    c.equal("METHODS 1.3 examples", dm.download(), want);
  }
  Cases cases{c};
  for (const Shape& s : kShapes)
    for (auto& [what, w] : mask_inputs(s.R * s.K))
      for (int shift : {0, 1}) {
        if (shift && s.R * s.K > 100000) continue;
        Dev<float> dw(w, shift), dm(s.R * s.K, shift);
        sieve::cuda::mask24_magnitude(dm.get(), dw.get(), s.R, s.K, 0);
        std::vector<float> ref(w.size());
        sieve::cpu::mask24_magnitude(ref.data(), w.data(), s.R, s.K);
        const auto out = dm.download();
        const std::string name = shape_name(s.R, s.K, shift) + " " + what;
        cases.same(name, out, ref);
        c.expect(not_two_of_four(out, s.R, s.K, false) == 0, name + ": a group does not keep exactly 2");
      }
  cases.summary();
}

SIEVE_GPU_CHECK(mask24_transposable_matches_cpu) {
  {  // METHODS 2.6's worked example (retained |W| = 5.3)
    const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f, 0.2f, 0.8f, -0.6f, 0.1f,
                                  -0.5f, 0.3f, 0.05f, 0.9f, 0.3f, -0.7f, 0.2f, -0.4f};
    const std::vector<float> want = {1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0};
    Dev<float> dw(w), dm(16);
    sieve::cuda::mask24_transposable(dm.get(), dw.get(), 4, 4, 0);
    c.equal("METHODS 2.6 example", dm.download(), want);
  }
  Cases cases{c};
  for (const Shape& s : kShapes)
    for (auto& [what, w] : mask_inputs(s.R * s.K))
      for (int shift : {0, 1}) {
        if (shift && s.R * s.K > 100000) continue;
        Dev<float> dw(w, shift), dm(s.R * s.K, shift);
        sieve::cuda::mask24_transposable(dm.get(), dw.get(), s.R, s.K, 0);
        std::vector<float> ref(w.size());
        sieve::cpu::mask24_transposable(ref.data(), w.data(), s.R, s.K);
        const auto out = dm.download();
        const std::string name = shape_name(s.R, s.K, shift) + " " + what;
        cases.same(name, out, ref);
        c.expect(not_two_of_four(out, s.R, s.K, false) == 0, name + ": a row group does not keep exactly 2");
        c.expect(not_two_of_four(out, s.R, s.K, true) == 0, name + ": a column group does not keep exactly 2");
      }
  // more bands than one grid row of the launch covers (gridDim.y is capped at 65535)
  const int64_t R = 4 * 4 * 65535 + 8, K = 4;
  const auto w = gc::with_ties(R * K);
  Dev<float> dw(w), dm(R * K);
  sieve::cuda::mask24_transposable(dm.get(), dw.get(), R, K, 0);
  std::vector<float> ref(w.size());
  sieve::cpu::mask24_transposable(ref.data(), w.data(), R, K);
  cases.same(shape_name(R, K, 0) + " ties", dm.download(), ref);
  cases.summary();
}

SIEVE_GPU_CHECK(sste_threshold_matches_cpu) {
  Cases cases{c};
  for (int64_t n : {int64_t(4), int64_t(1024), int64_t(4 * 12345), int64_t(768) * 3072})
    for (float scale : {1.0f, 1.9412f}) {
      for (auto& [what, w] : mask_inputs(n))
        for (int shift : {0, 1}) {
          if (shift && n > 100000) continue;
          std::vector<float> ref(n), ref_mask(n), ref_bf16(n);
          sieve::cpu::sste_threshold(ref.data(), w.data(), scale, n);
          sieve::cpu::mask24_magnitude(ref_mask.data(), w.data(), 1, n);
          for (int64_t i = 0; i < n; i++) ref_bf16[i] = __bfloat162float(__float2bfloat16_rn(ref[i]));
          const std::string name = std::to_string(n) + (shift ? " misaligned " : " ") + what + " scale " +
                                   std::to_string(scale).substr(0, 6);
          // every combination of the three outputs, each against the same reference
          for (int outputs = 1; outputs < 8; outputs++) {
            const bool f32 = outputs & 1, bf16 = outputs & 2, mask = outputs & 4;
            Dev<float> dw(w, shift), dout(f32 ? n : 0, shift), dmask(mask ? n : 0, shift);
            Dev<__nv_bfloat16> dbf(bf16 ? n : 0, shift);
            sieve::cuda::sste_threshold(f32 ? dout.get() : nullptr, bf16 ? dbf.get() : nullptr,
                                        mask ? dmask.get() : nullptr, dw.get(), scale, n, 0);
            const std::string tag = name + (f32 ? " +fp32" : "") + (bf16 ? " +bf16" : "") + (mask ? " +mask" : "");
            if (f32) {
              const auto out = dout.download();
              cases.same(tag + ": fp32", out, ref);
              int64_t over = 0;  // at most 2 nonzeros per group of 4 (NaN groups aside)
              for (int64_t g = 0; g < n / 4; g++) {
                int nz = 0;
                bool nan = false;
                for (int j = 0; j < 4; j++) nz += out[4 * g + j] != 0.0f, nan |= std::isnan(out[4 * g + j]);
                over += !nan && nz > 2;
              }
              c.expect(over == 0, tag + ": " + std::to_string(over) + " groups with more than 2 nonzeros");
            }
            if (bf16) {
              const auto raw = dbf.download();
              std::vector<float> out(n);
              for (int64_t i = 0; i < n; i++) out[i] = __bfloat162float(raw[i]);
              cases.same(tag + ": bf16 = round(fp32 output)", out, ref_bf16);
            }
            if (mask) {
              const auto out = dmask.download();
              cases.same(tag + ": mask", out, ref_mask);
              c.expect(not_two_of_four(out, 1, n, false) == 0, tag + ": a mask group does not keep exactly 2");
            }
          }
        }
    }
  cases.summary();
}

SIEVE_GPU_CHECK(sste_dots_match_cpu) {
  for (int64_t n : {int64_t(4), int64_t(16384), int64_t(16388), int64_t(4 * 100003), int64_t(4096) * 1104})
    for (int shift : {0, 1}) {
      const auto w = gc::normal(n, 0.02f);
      double ref[2];
      sieve::cpu::sste_dots(&ref[0], &ref[1], w.data(), n);
      Dev<float> dw(w, shift);
      DeviceBuffer<double> scratch(sieve::cuda::sste_dots_scratch(n)), dots(2), again(2);
      sieve::cuda::sste_dots(dots.get(), dw.get(), n, scratch.get(), 0);
      sieve::cuda::sste_dots(again.get(), dw.get(), n, scratch.get(), 0);
      const auto out = dots.download(), out2 = again.download();
      const std::string name = std::to_string(n) + (shift ? " misaligned" : "");
      for (int j = 0; j < 2; j++) {
        const double rel = std::fabs(out[j] - ref[j]) / std::fabs(ref[j]);
        char buf[200];
        snprintf(buf, sizeof buf, "%s: %s = %.17g, CPU %.17g (relative %.2e > 1e-12)", name.c_str(),
                 j ? "<S,S>" : "<w,S>", out[j], ref[j], rel);
        c.expect(rel <= 1e-12, buf);
        c.expect(std::memcmp(&out[j], &out2[j], sizeof(double)) == 0, name + ": a second call gave other bits");
      }
    }
}

SIEVE_GPU_CHECK(masked_weight_matches_cpu) {
  Cases cases{c};
  for (int64_t n : {int64_t(1), int64_t(7), int64_t(4 * 12345), int64_t(768) * 3072 + 2})
    for (int shift : {0, 1}) {
      auto w = sprinkle(gc::normal(n), 50, true);
      std::vector<float> mask(n), ref(n), ref_bf16(n);
      for (int64_t i = 0; i < n; i++) mask[i] = (i / 2 + i / 7) % 2 ? 1.0f : 0.0f;
      for (int64_t i = 0; i < n; i++) ref[i] = mask[i] * w[i];  // cpu/transform.cc's MASK transform
      for (int64_t i = 0; i < n; i++) ref_bf16[i] = __bfloat162float(__float2bfloat16_rn(ref[i]));
      Dev<float> dw(w, shift), dm(mask, shift), dout(n, shift);
      Dev<__nv_bfloat16> dbf(n, shift);
      sieve::cuda::masked_weight(dout.get(), dbf.get(), dw.get(), dm.get(), n, 0);
      const std::string name = std::to_string(n) + (shift ? " misaligned" : "");
      cases.same(name + " fp32", dout.download(), ref);
      const auto raw = dbf.download();
      std::vector<float> out(n);
      for (int64_t i = 0; i < n; i++) out[i] = __bfloat162float(raw[i]);
      cases.same(name + " bf16", out, ref_bf16);
    }
  cases.summary();
}

// CAST's weight scales: W~ = A (.) W (fp32 and bf16) and the backward's dW bit for bit; dA within
// 1e-7 (double sums in another order can move its one rounding to float by an ulp).
SIEVE_GPU_CHECK(weight_scale_matches_cpu) {
  Cases cases{c};
  struct S {
    int64_t R, K, SG;
  };
  for (S s : {S{1, 2, 1}, S{3, 10, 2}, S{64, 172, 2}, S{768, 3072, 2}, S{17, 96, 4}}) {
    const int64_t n = s.R * s.K;
    const auto w = gc::normal(n), dwt = gc::normal(n), scale = gc::normal(s.R * s.SG), dw0 = gc::normal(n),
               ds0 = gc::normal(s.R * s.SG);
    std::vector<float> ref(n), dw = dw0, ds = ds0;
    sieve::cpu::weight_scale_forward(ref.data(), w.data(), scale.data(), s.R, s.K, s.SG);
    sieve::cpu::weight_scale_backward(dw.data(), ds.data(), dwt.data(), w.data(), scale.data(), s.R, s.K, s.SG);
    std::vector<float> ref_bf16(n);
    for (int64_t i = 0; i < n; i++) ref_bf16[i] = __bfloat162float(__float2bfloat16_rn(ref[i]));
    Dev<float> d_w(w), d_scale(scale), d_out(n), d_dwt(dwt), d_dw(dw0), d_ds(ds0);
    Dev<__nv_bfloat16> d_bf(n);
    sieve::cuda::weight_scale(d_out.get(), d_bf.get(), d_w.get(), d_scale.get(), s.R, s.K, s.SG, 0);
    sieve::cuda::weight_scale_backward(d_dw.get(), d_ds.get(), d_dwt.get(), d_w.get(), d_scale.get(), s.R, s.K, s.SG,
                                       0);
    const std::string name = shape_name(s.R, s.K, 0) + " SG=" + std::to_string(s.SG);
    cases.same(name + " W~", d_out.download(), ref);
    const auto raw = d_bf.download();
    std::vector<float> out(n);
    for (int64_t i = 0; i < n; i++) out[i] = __bfloat162float(raw[i]);
    cases.same(name + " W~ bf16", out, ref_bf16);
    cases.same(name + " dW", d_dw.download(), dw);
    c.close(name + " dA", d_ds.download(), ds, 1e-7);
  }
  cases.summary();
}

SIEVE_GPU_CHECK(masked_decay_matches_cpu) {
  sieve::SeamSpec spec;
  spec.kind = SIEVE_HOOK_MASKED_DECAY;
  Cases cases{c};
  for (float lambda : {6e-5f, 2e-4f})
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(1000), int64_t(1 << 20) + 3})
      for (int shift : {0, 1}) {
        spec.params = {lambda};
        auto grad = gc::normal(n, 0.01f);
        const auto w = gc::normal(n);
        std::vector<float> mask(n);
        std::bernoulli_distribution keep(0.5);
        for (int64_t i = 0; i < n; i++) mask[i] = keep(gc::rng()) ? 1.0f : 0.0f;
        for (int64_t i = 0; i < n; i += 5) grad[i] = -0.0f;  // kept entries must keep the sign of zero
        Dev<float> dg(grad, shift), dw(w, shift), dm(mask, shift);
        sieve::cuda::masked_decay(dg.get(), dw.get(), dm.get(), lambda, n, 0);
        std::vector<float> ref = grad;
        sieve::cpu::grad_hook_apply(ref.data(), w.data(), mask.data(), spec, n);
        const auto out = dg.download();
        const std::string name = std::to_string(n) + (shift ? " misaligned" : "") + " lambda " + std::to_string(lambda);
        cases.same(name, out, ref);
        int64_t touched = 0;
        for (int64_t i = 0; i < n; i++)
          touched += mask[i] == 1.0f && std::memcmp(&out[i], &grad[i], sizeof(float)) != 0;
        c.expect(touched == 0, name + ": " + std::to_string(touched) + " kept entries changed");
      }
  cases.summary();
}

SIEVE_GPU_CHECK(mvue24_matches_cpu) {
  struct Case {
    int64_t N, D, ldo, ldg;
  };
  const Case shapes[] = {{4, 1, 1, 1}, {16, 33, 33, 40}, {1027, 300, 310, 305}, {4096, 768, 768, 768}, {6, 5000, 5000, 5000}};
  Cases cases{c};
  for (const Case& k : shapes) {
    const uint64_t seed = gc::rng()();
    auto g = gc::normal(k.N * k.ldg, 0.01f);
    std::uniform_int_distribution<int> kind(0, 49);
    // zeros, ties, now and then a non-finite value, one whose group's S overflows single precision
    // (passed on as it is) and one far below its neighbours (where S - a_j would have cancelled)
    for (auto& x : g) {
      const int r = kind(gc::rng());
      x = r == 0 ? 0.0f : r == 1 ? 0.005f : r == 2 ? -0.005f : r == 3 ? NAN : r == 4 ? INFINITY : r == 5 ? 3e38f
          : r == 6 ? 1e-30f : x;
    }
    std::vector<float> out0(k.N * k.ldo, 7.0f);  // columns D..ldo-1 must stay untouched
    std::vector<float> ref = out0;
    sieve::cpu::mvue24(ref.data(), g.data(), k.N, k.D, k.ldo, k.ldg, seed);
    Dev<float> dg(g), dout(out0);
    sieve::cuda::mvue24(dout.get(), dg.get(), k.N, k.D, k.ldo, k.ldg, seed, 0);
    const auto out = dout.download();
    const std::string name = std::to_string(k.N) + "x" + std::to_string(k.D) + " ld " + std::to_string(k.ldo) + "/" +
                             std::to_string(k.ldg);
    cases.same(name, out, ref);
    // the bf16 form (the weight-gradient GEMM's operand): the fp32 draws rounded to nearest even
    std::vector<__nv_bfloat16> out0_bf(out0.size(), __float2bfloat16_rn(7.0f));
    Dev<__nv_bfloat16> dout_bf(out0_bf);
    sieve::cuda::mvue24(dout_bf.get(), dg.get(), k.N, k.D, k.ldo, k.ldg, seed, 0);
    const auto raw = dout_bf.download();
    std::vector<float> out_bf(raw.size()), ref_bf(ref.size());
    for (size_t i = 0; i < raw.size(); i++) {
      out_bf[i] = __bfloat162float(raw[i]);
      ref_bf[i] = __bfloat162float(__float2bfloat16_rn(ref[i]));
    }
    cases.same(name + " bf16", out_bf, ref_bf);
    int64_t over = 0;
    for (int64_t q = 0; q < k.N / 4; q++)
      for (int64_t d = 0; d < k.D; d++) {
        int nz = 0;
        float S = 0.0f;  // core/mvue.h's: a group whose S is finite is estimated
        for (int i = 0; i < 4; i++) {
          nz += out[(4 * q + i) * k.ldo + d] != 0.0f;
          S += std::fabs(g[(4 * q + i) * k.ldg + d]) + sieve::kMvueEps;
        }
        over += std::isfinite(S) && nz > 2;
      }
    c.expect(over == 0, name + ": " + std::to_string(over) + " estimated groups with more than 2 nonzeros");
  }
  cases.summary();
  // Unbiased: one group (METHODS 2.7's example) in 2^18 columns, each with its own draws;
  // the mean of x_i / p_i over the columns where i was drawn must be x_i within 5 sigma.
  const int64_t D = 1 << 18;
  const float x[4] = {0.9f, -0.1f, 0.4f, -0.7f};
  std::vector<float> g(4 * D);
  for (int i = 0; i < 4; i++)
    for (int64_t d = 0; d < D; d++) g[i * D + d] = x[i];
  Dev<float> dg(g), dout(4 * D);
  sieve::cuda::mvue24(dout.get(), dg.get(), 4, D, D, D, gc::rng()(), 0);
  const auto out = dout.download();
  float p[4];
  sieve::cpu::mvue24_probabilities(p, x);
  int64_t not_two = 0;
  for (int64_t d = 0; d < D; d++)
    not_two += (out[d] != 0) + (out[D + d] != 0) + (out[2 * D + d] != 0) + (out[3 * D + d] != 0) != 2;
  c.expect(not_two == 0, "unbiasedness run: " + std::to_string(not_two) + " columns without exactly 2 kept");
  for (int i = 0; i < 4; i++) {
    double mean = 0;
    for (int64_t d = 0; d < D; d++) mean += out[i * D + d];
    mean /= (double)D;
    const double sigma = std::fabs(x[i]) * std::sqrt((1.0 - p[i]) / p[i] / (double)D);
    char buf[160];
    snprintf(buf, sizeof buf, "E[out_%d] = %.5f, x = %.5f, 5 sigma = %.5f", i, mean, (double)x[i], 5 * sigma);
    c.expect(std::fabs(mean - x[i]) <= 5 * sigma, buf);
  }
}

SIEVE_GPU_CHECK(flips_and_counts_match_cpu) {
  DeviceBuffer<int64_t> dcount(1);
  int64_t cases = 0;
  auto same = [&](const std::string& what, int64_t gpu, int64_t cpu) {
    cases++;
    c.expect(gpu == cpu, what + ": " + std::to_string(gpu) + ", CPU " + std::to_string(cpu));
  };
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(1 << 20) + 1}) {
    std::vector<float> before(n), after(n);
    std::bernoulli_distribution one(0.5), flip(0.1);
    for (int64_t i = 0; i < n; i++) {
      before[i] = one(gc::rng()) ? 1.0f : 0.0f;
      after[i] = flip(gc::rng()) ? 1.0f - before[i] : before[i];
    }
    if (n > 4) after[3] = NAN;  // NaN != NaN: a flip on both backends
    Dev<float> db(before, n == 5), da(after, n == 5);
    sieve::cuda::mask_flips(dcount.get(), db.get(), da.get(), n, 0);
    same("flips n=" + std::to_string(n), dcount.download()[0], sieve::cpu::mask_flips(before.data(), after.data(), n));
  }
  for (const Shape& s : kShapes) {
    const int64_t n = s.R * s.K;
    for (double density : {0.3, 0.5, 0.7}) {
      auto w = gc::normal(n);
      std::bernoulli_distribution zero(1.0 - density);
      for (auto& v : w)
        if (zero(gc::rng())) v = 0.0f;
      if (n >= 8) w[5] = NAN;  // NaN counts as nonzero
      Dev<float> dw(w);
      const std::string name = shape_name(s.R, s.K, 0) + " density " + std::to_string(density).substr(0, 3);
      sieve::cuda::count24_along_rows(dcount.get(), dw.get(), s.R, s.K, 0);
      same(name + " along rows", dcount.download()[0], sieve::cpu::count24_along_rows(w.data(), s.R, s.K));
      sieve::cuda::count24_along_cols(dcount.get(), dw.get(), s.R, s.K, 0);
      same(name + " along cols", dcount.download()[0], sieve::cpu::count24_along_cols(w.data(), s.R, s.K));
    }
  }
  c.equal(std::to_string(cases) + " counts", {}, {});
}
