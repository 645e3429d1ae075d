// attention_checks.cu — cuda/attention.cuh against cpu/attention.cc (ops.h): the fused forward
// (out, its bf16 copy, lse) and backward (dqkv), determinism, and the shapes it refuses, for
// both kinds of math (AttentionMath::fp32 named explicitly, and the bf16 tensor-core path).
//
// fp32 shapes: the tiny test models' HS = 8, HS = 32 with T = 130 (tiles of 64 and 32 end
// mid-tile), GPT-2's HS = 64, HS = 128 (the 32-wide tiles), plus HS = 6 (not a multiple of 4:
// the scalar loads) and HS = 100 (padded to 128); two cases run on pointers 4 bytes off
// alignment. bf16 shapes (64-row blocks of 4 warps x 16 rows): HS = 64 (T = 256, and T = 200
// ending mid-tile), HS = 128 (T = 200), HS = 100, 40 and 96 (padded to 128, 64 and 128), T = 9
// (one partial warp of rows), T = 129 (one row past two tiles), T = 1030 (17 tiles), several
// (b, head) pairs, HS = 64 on misaligned pointers (the scalar loads), and T = 1 on its own
// (attention_bf16_single_position).
//
// Tolerances (relative error, check.h):
//   - fp32 out and dqkv: kTolF32 (1e-5). Both sides compute in fp32 and differ only in the order
//     of sums (online softmax and tiles here, whole rows on the CPU): each value is a sum of at
//     most T <= 256 terms of similar size, about sqrt(T) u = 1e-6 relative, so 1e-5 leaves a
//     margin while any bf16/tf32 rounding (>= 1e-3) or a wrong mask would fail.
//   - bf16 out and dqkv: kTolBf16 (1e-2) per q/k/v part. Q, K, V, dO, P and dS are rounded to
//     bf16 (u = 2^-9, about 1e-3 relative each, accumulated in fp32): a few 1e-3 expected, while
//     a wrong mask, tile index or missing term is O(1).
//   - out_bf16: exactly out rounded to nearest even.
//   - lse: kTolF32 against a float64 log-sum-exp of the same fp32 inputs (fp32); kTolLseBf16
//     (1e-4) against a float64 log-sum-exp of the inputs rounded to bf16 (bf16): the products
//     of bf16 values are exact in fp32 and only the fp32 sums, expf and logf remain (about
//     1e-6), while the rounding of q and k alone moves lse by about 2e-3 absolute, and a wrong
//     mask or tile index by O(1).
//   - determinism: the same bits from two runs.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/ops.h"
#include "cuda/attention.cuh"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"

namespace {

using sieve::cuda::AttentionMath;
using sieve::cuda::DeviceBuffer;
namespace gc = sieve::gpu_check;

constexpr double kTolLseBf16 = 1e-4;

struct Shape {
  int64_t B, T, C, NH;
  int shift;  // floats the device copies sit past their allocation (1: misaligned)
};
const Shape kShapes[] = {
    {2, 37, 16, 2, 0},    // HS = 8
    {1, 130, 96, 3, 0},   // HS = 32
    {2, 256, 768, 12, 0}, // HS = 64
    {1, 200, 256, 2, 0},  // HS = 128
    {1, 65, 12, 2, 0},    // HS = 6
    {1, 70, 200, 2, 0},   // HS = 100
    {2, 37, 16, 2, 1},    // HS = 8, misaligned
    {1, 130, 96, 3, 1},   // HS = 32, misaligned
};
const Shape kBf16Shapes[] = {
    {2, 256, 768, 12, 0},  // HS = 64
    {1, 200, 128, 2, 0},   // HS = 64, T not a multiple of the 64-row tiles
    {1, 200, 256, 2, 0},   // HS = 128
    {1, 70, 200, 2, 0},    // HS = 100, padded to 128
    {1, 200, 128, 2, 1},   // HS = 64, misaligned: the scalar loads
    {2, 77, 80, 2, 0},     // HS = 40, padded to 64
    {1, 129, 192, 2, 0},   // HS = 96, padded to 128; one row past two tiles
    {2, 9, 256, 2, 0},     // HS = 128, T = 9: fewer rows than one warp's 16
    {1, 1030, 128, 2, 0},  // HS = 64, 17 tiles, the last with 6 rows
};

std::string name(const Shape& s) {
  return "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " C=" + std::to_string(s.C) +
         " NH=" + std::to_string(s.NH) + (s.shift ? " misaligned" : "");
}

// A device copy `shift` elements into its allocation.
template <class T>
struct Dev {
  DeviceBuffer<T> buf;
  int shift;
  int64_t n;
  Dev(int64_t n_, int shift_) : buf(n_ + shift_), shift(shift_), n(n_) {}
  Dev(const std::vector<T>& host, int shift_) : Dev((int64_t)host.size(), shift_) { upload(host); }
  T* get() const { return buf.get() + shift; }
  void upload(const std::vector<T>& host) {
    SIEVE_CUDA(cudaMemcpy(get(), host.data(), sizeof(T) * (size_t)n, cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> host((size_t)n);
    SIEVE_CUDA(cudaMemcpy(host.data(), get(), sizeof(T) * (size_t)n, cudaMemcpyDeviceToHost));
    return host;
  }
};

// The CPU's forward (out, and P for its backward) and backward.
struct CpuRef {
  std::vector<float> out, att, dqkv;
};
CpuRef cpu_attention(const Shape& s, const std::vector<float>& qkv, const std::vector<float>& dout) {
  CpuRef r;
  r.out.resize((size_t)(s.B * s.T * s.C));
  r.att.resize((size_t)(s.B * s.NH * s.T * s.T));
  sieve::cpu::attention_forward(r.out.data(), r.att.data(), nullptr, qkv.data(), s.B, s.T, s.C, s.NH);
  if (!dout.empty()) {
    std::vector<float> scratch((size_t)(omp_get_max_threads() * s.T * s.T));
    r.dqkv.resize(qkv.size());
    sieve::cpu::attention_backward(r.dqkv.data(), scratch.data(), dout.data(), qkv.data(), r.att.data(), s.B, s.T,
                                   s.C, s.NH);
  }
  return r;
}

// lse[(b NH + h) T + t] = log sum_{j <= t} exp(q_t . k_j / sqrt(HS)), in double.
std::vector<double> lse_ref(const Shape& s, const std::vector<float>& qkv) {
  const int64_t HS = s.C / s.NH;
  const double scale = 1.0 / std::sqrt((double)HS);
  std::vector<double> lse((size_t)(s.B * s.NH * s.T));
#pragma omp parallel for collapse(2)
  for (int64_t bh = 0; bh < s.B * s.NH; bh++)
    for (int64_t t = 0; t < s.T; t++) {
      const int64_t b = bh / s.NH, h = bh % s.NH;
      const float* q = &qkv[(size_t)((b * s.T + t) * 3 * s.C + h * HS)];
      std::vector<double> sc((size_t)(t + 1));
      double m = -INFINITY;
      for (int64_t j = 0; j <= t; j++) {
        const float* k = &qkv[(size_t)((b * s.T + j) * 3 * s.C + s.C + h * HS)];
        double d = 0;
        for (int64_t e = 0; e < HS; e++) d += (double)q[e] * (double)k[e];
        sc[(size_t)j] = d * scale;
        m = std::max(m, sc[(size_t)j]);
      }
      double sum = 0;
      for (double x : sc) sum += std::exp(x - m);
      lse[(size_t)(bh * s.T + t)] = m + std::log(sum);
    }
  return lse;
}

// Part p (0 q, 1 k, 2 v) of a (B, T, 3C) buffer, as (B, T, C).
std::vector<float> part(const std::vector<float>& x, const Shape& s, int p) {
  std::vector<float> y((size_t)(s.B * s.T * s.C));
  for (int64_t bt = 0; bt < s.B * s.T; bt++)
    std::memcpy(&y[(size_t)(bt * s.C)], &x[(size_t)(bt * 3 * s.C + p * s.C)], sizeof(float) * (size_t)s.C);
  return y;
}

void close_dqkv(gc::Check& c, const std::string& what, const std::vector<float>& got, const std::vector<float>& ref,
                const Shape& s, double tol) {
  const char* parts[] = {"dq", "dk", "dv"};
  for (int p = 0; p < 3; p++) c.close(what + " " + parts[p], part(got, s, p), part(ref, s, p), tol);
}

// Device results of one forward + backward.
struct GpuRun {
  std::vector<float> out, out_bf16, lse, dqkv;
};
GpuRun gpu_attention(const Shape& s, const std::vector<float>& qkv, const std::vector<float>& dout,
                     AttentionMath fwd_math, AttentionMath bwd_math) {
  const int64_t n = s.B * s.T * s.C;
  Dev<float> d_qkv(qkv, s.shift), d_dout(dout, s.shift), d_out(n, s.shift), d_lse(s.B * s.NH * s.T, s.shift),
      d_dqkv(3 * n, s.shift), scratch((int64_t)sieve::cuda::attention_backward_scratch_floats(s.B, s.T, s.C, s.NH), 0);
  Dev<__nv_bfloat16> d_bf(n, s.shift);
  // NaN everywhere first: a value the kernels fail to write shows
  SIEVE_CUDA(cudaMemset(d_out.get(), 0xff, sizeof(float) * (size_t)n));
  SIEVE_CUDA(cudaMemset(d_dqkv.get(), 0xff, sizeof(float) * (size_t)(3 * n)));
  SIEVE_CUDA(cudaMemset(d_lse.get(), 0xff, sizeof(float) * (size_t)d_lse.n));
  sieve::cuda::attention_forward(d_out.get(), d_bf.get(), d_lse.get(), d_qkv.get(), s.B, s.T, s.C, s.NH, 0,
                                 fwd_math);
  sieve::cuda::attention_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_out.get(), d_lse.get(), scratch.get(),
                                  s.B, s.T, s.C, s.NH, 0, bwd_math);
  SIEVE_CUDA(cudaDeviceSynchronize());
  GpuRun r{d_out.download(), {}, d_lse.download(), d_dqkv.download()};
  for (auto x : d_bf.download()) r.out_bf16.push_back(__bfloat162float(x));
  return r;
}
GpuRun gpu_attention(const Shape& s, const std::vector<float>& qkv, const std::vector<float>& dout, AttentionMath math) {
  return gpu_attention(s, qkv, dout, math, math);
}

// x with every value rounded to bf16 (nearest even).
std::vector<float> rounded_bf16(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
  return y;
}

// The forward's checks at one shape and math: out against the CPU, out_bf16 = bf16(out), lse
// against float64 (of the inputs the math multiplies).
void check_forward(gc::Check& c, const Shape& s, AttentionMath math, const std::string& tag) {
  const double tol = math == AttentionMath::fp32 ? gc::kTolF32 : gc::kTolBf16;
  const double tol_lse = math == AttentionMath::fp32 ? gc::kTolF32 : kTolLseBf16;
  const auto qkv = gc::normal(s.B * s.T * 3 * s.C);
  const CpuRef ref = cpu_attention(s, qkv, {});
  const GpuRun got = gpu_attention(s, qkv, gc::normal(s.B * s.T * s.C), math);
  c.close(tag + name(s) + " out", got.out, ref.out, tol);
  c.equal(tag + name(s) + " out_bf16 = bf16(out)", got.out_bf16, rounded_bf16(got.out));
  c.close(tag + name(s) + " lse", got.lse, lse_ref(s, math == AttentionMath::fp32 ? qkv : rounded_bf16(qkv)), tol_lse);
}

// The backward alone, fed the CPU's out and the float64 lse rounded to float.
std::vector<float> backward_from_reference(const Shape& s, const std::vector<float>& qkv,
                                           const std::vector<float>& dout, const CpuRef& ref, AttentionMath math) {
  std::vector<float> lse;
  for (double x : lse_ref(s, qkv)) lse.push_back((float)x);
  const int64_t n = s.B * s.T * s.C;
  Dev<float> d_qkv(qkv, s.shift), d_dout(dout, s.shift), d_out(ref.out, s.shift), d_lse(lse, s.shift),
      d_dqkv(3 * n, s.shift), scratch((int64_t)sieve::cuda::attention_backward_scratch_floats(s.B, s.T, s.C, s.NH), 0);
  SIEVE_CUDA(cudaMemset(d_dqkv.get(), 0xff, sizeof(float) * (size_t)(3 * n)));
  sieve::cuda::attention_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_out.get(), d_lse.get(), scratch.get(),
                                  s.B, s.T, s.C, s.NH, 0, math);
  return d_dqkv.download();
}

// The GPU's forward then backward on fresh inputs against the CPU's dqkv, within tol per part.
void check_backward(gc::Check& c, const Shape& s, AttentionMath math, const std::string& prefix, double tol) {
  const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
  const CpuRef ref = cpu_attention(s, qkv, dout);
  const GpuRun got = gpu_attention(s, qkv, dout, math);
  close_dqkv(c, prefix + name(s), got.dqkv, ref.dqkv, s, tol);
}

}  // namespace

SIEVE_GPU_CHECK(attention_forward_matches_cpu) {
  for (const Shape& s : kShapes) check_forward(c, s, AttentionMath::fp32, "");
}

// The backward fed by the GPU forward's out and lse reproduces the CPU's dqkv (which the CPU
// computes from its stored P): lse is the log-sum-exp the backward expects.
SIEVE_GPU_CHECK(attention_backward_matches_cpu) {
  for (const Shape& s : kShapes) check_backward(c, s, AttentionMath::fp32, "", gc::kTolF32);
}

// The backward alone, fed the CPU's out and the float64 lse rounded to float: the contract of
// lse (natural log, scaled scores, (B, NH, T)) is what the backward assumes, whoever made it.
SIEVE_GPU_CHECK(attention_backward_from_reference_lse) {
  for (const Shape& s : {kShapes[0], kShapes[2], kShapes[3]}) {
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const CpuRef ref = cpu_attention(s, qkv, dout);
    close_dqkv(c, name(s), backward_from_reference(s, qkv, dout, ref, AttentionMath::fp32), ref.dqkv, s,
               gc::kTolF32);
  }
}

SIEVE_GPU_CHECK(attention_is_deterministic) {
  for (const Shape& s : {kShapes[1], kShapes[2], kShapes[3]}) {
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const GpuRun a = gpu_attention(s, qkv, dout, AttentionMath::fp32), b = gpu_attention(s, qkv, dout, AttentionMath::fp32);
    c.equal(name(s) + " out", a.out, b.out);
    c.equal(name(s) + " lse", a.lse, b.lse);
    c.equal(name(s) + " dqkv", a.dqkv, b.dqkv);
  }
}

// ---- the bf16 tensor-core path

SIEVE_GPU_CHECK(attention_bf16_forward_matches_cpu) {
  for (const Shape& s : kBf16Shapes) check_forward(c, s, AttentionMath::bf16, "bf16 ");
}

SIEVE_GPU_CHECK(attention_bf16_backward_matches_cpu) {
  for (const Shape& s : kBf16Shapes) check_backward(c, s, AttentionMath::bf16, "bf16 ", gc::kTolBf16);
}

// The bf16 backward fed the CPU's out and the float64 lse; and each backward fed the other
// math's forward: lse means the same in both, so they mix (within the bf16 tolerance).
SIEVE_GPU_CHECK(attention_bf16_mixes_with_fp32) {
  for (const Shape& s : {kBf16Shapes[1], kBf16Shapes[2]}) {
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const CpuRef ref = cpu_attention(s, qkv, dout);
    close_dqkv(c, "bf16 from reference lse " + name(s),
               backward_from_reference(s, qkv, dout, ref, AttentionMath::bf16), ref.dqkv, s, gc::kTolBf16);
    const GpuRun a = gpu_attention(s, qkv, dout, AttentionMath::fp32, AttentionMath::bf16);
    close_dqkv(c, "fp32 fwd, bf16 bwd " + name(s), a.dqkv, ref.dqkv, s, gc::kTolBf16);
    const GpuRun b = gpu_attention(s, qkv, dout, AttentionMath::bf16, AttentionMath::fp32);
    close_dqkv(c, "bf16 fwd, fp32 bwd " + name(s), b.dqkv, ref.dqkv, s, gc::kTolBf16);
  }
}

SIEVE_GPU_CHECK(attention_bf16_is_deterministic) {
  for (const Shape& s : {kBf16Shapes[0], kBf16Shapes[1], kBf16Shapes[2], kBf16Shapes[6], kBf16Shapes[8]}) {
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const GpuRun a = gpu_attention(s, qkv, dout, AttentionMath::bf16), b = gpu_attention(s, qkv, dout, AttentionMath::bf16);
    c.equal("bf16 " + name(s) + " out", a.out, b.out);
    c.equal("bf16 " + name(s) + " lse", a.lse, b.lse);
    c.equal("bf16 " + name(s) + " dqkv", a.dqkv, b.dqkv);
  }
}

// T = 1: each row attends to itself only, so out = v (rounded to bf16), lse = the scaled
// q . k, dv = dout (times P = 1), and dq = dk = 0 in exact arithmetic (a softmax over one key has
// no gradient). The bf16 backward leaves rounding noise there (dP = bf16(dO) . bf16(v) against
// D = dO . out in fp32): relative to dv's norm it must stay within kTolBf16.
SIEVE_GPU_CHECK(attention_bf16_single_position) {
  for (const Shape& s : {Shape{3, 1, 128, 2, 0}, Shape{2, 1, 256, 2, 0}}) {  // HS = 64, 128
    check_forward(c, s, AttentionMath::bf16, "bf16 ");
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const CpuRef ref = cpu_attention(s, qkv, dout);
    const GpuRun got = gpu_attention(s, qkv, dout, AttentionMath::bf16);
    c.close("bf16 " + name(s) + " dv", part(got.dqkv, s, 2), part(ref.dqkv, s, 2), gc::kTolBf16);
    double dv2 = 0;
    for (float x : part(ref.dqkv, s, 2)) dv2 += (double)x * x;
    for (int p = 0; p < 2; p++) {
      double n2 = 0;
      for (float x : part(got.dqkv, s, p)) n2 += (double)x * x;  // NaN fails below
      const double rel = std::sqrt(n2 / dv2);
      c.expect(rel <= gc::kTolBf16, "bf16 " + name(s) + (p ? " dk" : " dq") + ": norm " + std::to_string(rel) +
                                        " of dv's, over tolerance");
    }
  }
}

// attention_math picks bf16 for HS 64 and 128 only, and the overloads without a math follow it:
// the same bits as the math named.
SIEVE_GPU_CHECK(attention_default_math) {
  for (int64_t hs = 1; hs <= 128; hs++) {
    const bool bf16 = sieve::cuda::attention_math(hs) == AttentionMath::bf16;
    c.expect(bf16 == (hs == 64 || hs == 128), "attention_math(" + std::to_string(hs) + ")");
  }
  for (const Shape& s : {kShapes[1], kShapes[5], kBf16Shapes[1], kBf16Shapes[2]}) {
    const AttentionMath math = sieve::cuda::attention_math(s.C / s.NH);
    const auto qkv = gc::normal(s.B * s.T * 3 * s.C), dout = gc::normal(s.B * s.T * s.C);
    const GpuRun named = gpu_attention(s, qkv, dout, math);
    const int64_t n = s.B * s.T * s.C;
    Dev<float> d_qkv(qkv, s.shift), d_dout(dout, s.shift), d_out(n, s.shift), d_lse(s.B * s.NH * s.T, s.shift),
        d_dqkv(3 * n, s.shift),
        scratch((int64_t)sieve::cuda::attention_backward_scratch_floats(s.B, s.T, s.C, s.NH), 0);
    sieve::cuda::attention_forward(d_out.get(), nullptr, d_lse.get(), d_qkv.get(), s.B, s.T, s.C, s.NH, 0);
    sieve::cuda::attention_backward(d_dqkv.get(), d_dout.get(), d_qkv.get(), d_out.get(), d_lse.get(), scratch.get(),
                                    s.B, s.T, s.C, s.NH, 0);
    const std::string what = std::string(math == AttentionMath::bf16 ? "bf16 " : "fp32 ") + name(s) + " default = named";
    c.equal(what + " out", d_out.download(), named.out);
    c.equal(what + " lse", d_lse.download(), named.lse);
    c.equal(what + " dqkv", d_dqkv.download(), named.dqkv);
  }
}

SIEVE_GPU_CHECK(attention_refuses_bad_shapes) {
  struct Bad {
    int64_t B, T, C, NH;
    const char* what;
  };
  const Bad bad[] = {{1, 8, 100, 3, "C % NH != 0"}, {1, 8, 258, 2, "HS = 129"}, {0, 8, 16, 2, "B = 0"},
                     {1, 0, 16, 2, "T = 0"}};
  for (const Bad& x : bad) {
    for (int backward = 0; backward < 2; backward++) {
      try {
        // the shape is refused before any pointer is used
        if (backward)
          sieve::cuda::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, x.B, x.T, x.C, x.NH, 0);
        else
          sieve::cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, x.B, x.T, x.C, x.NH, 0);
        c.expect(false, std::string(x.what) + ": accepted");
      } catch (const sieve::Error& e) {
        c.expect(e.status == SIEVE_E_INVALID_ARGUMENT, std::string(x.what) + ": " + e.message);
      }
    }
  }
  // the bf16 path takes head sizes 33..128 only
  const Bad bad_bf16[] = {{1, 8, 16, 2, "bf16 HS = 8"}, {1, 8, 64, 2, "bf16 HS = 32"}, {1, 8, 258, 2, "bf16 HS = 129"}};
  for (const Bad& x : bad_bf16) {
    for (int backward = 0; backward < 2; backward++) {
      try {
        if (backward)
          sieve::cuda::attention_backward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, x.B, x.T, x.C, x.NH, 0,
                                          AttentionMath::bf16);
        else
          sieve::cuda::attention_forward(nullptr, nullptr, nullptr, nullptr, x.B, x.T, x.C, x.NH, 0,
                                         AttentionMath::bf16);
        c.expect(false, std::string(x.what) + ": accepted");
      } catch (const sieve::Error& e) {
        c.expect(e.status == SIEVE_E_INVALID_ARGUMENT, std::string(x.what) + ": " + e.message);
      }
    }
  }
}
