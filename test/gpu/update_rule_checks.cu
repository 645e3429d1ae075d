// update_rule_checks.cu — cuda/update_rule.cuh against cpu/update_rule.h: AdamW, AST and
// AdamS over steps t = 1..5 with their state (w, m, v) carried on both sides, and the global norm.
//
// Tolerances: the updates are compared bit for bit after every step (the device evaluates
// the CPU's expression operation by operation, the bias corrections come from the same host
// code); the inputs include zeros, -0 and gradients whose squares are subnormal, so a flush
// to zero or a fused multiply-add would show. global_norm sums in another order than the
// CPU: 1e-12 relative (all terms >= 0), and the same bits on a second call.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/update_rule.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"
#include "cuda/update_rule.cuh"

namespace {

using sieve::cuda::DeviceBuffer;
namespace gc = sieve::gpu_check;

// A device copy `shift` floats into its allocation (shift 1: the scalar, misaligned path).
struct Dev {
  DeviceBuffer<float> buf;
  int shift;
  int64_t n;
  Dev(const std::vector<float>& host, int shift_) : buf((int64_t)host.size() + shift_), shift(shift_), n((int64_t)host.size()) {
    upload(host);
  }
  float* get() const { return buf.get() + shift; }
  void upload(const std::vector<float>& host) {
    if (n) SIEVE_CUDA(cudaMemcpy(get(), host.data(), sizeof(float) * (size_t)n, cudaMemcpyHostToDevice));
  }
  std::vector<float> download() const {
    std::vector<float> host((size_t)n);
    if (n) SIEVE_CUDA(cudaMemcpy(host.data(), get(), sizeof(float) * (size_t)n, cudaMemcpyDeviceToHost));
    return host;
  }
};

// Gradients with the cases that separate IEEE arithmetic from its shortcuts.
std::vector<float> gradient(int64_t n) {
  auto g = gc::normal(n, 0.01f);
  std::uniform_int_distribution<int> kind(0, 31);
  for (auto& x : g) {
    const int k = kind(gc::rng());
    x = k == 0 ? 0.0f : k == 1 ? -0.0f : k == 2 ? x * 1e-19f /* x^2 subnormal */ : k == 3 ? x * 1e3f : x;
  }
  return g;
}

std::vector<float> random_mask(int64_t n) {
  std::vector<float> m(n);
  std::bernoulli_distribution keep(0.5);
  for (auto& x : m) x = keep(gc::rng()) ? 1.0f : 0.0f;
  return m;
}

// The first index where a and b differ in bits, or -1.
int64_t first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  for (size_t i = 0; i < a.size(); i++)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return (int64_t)i;
  return -1;
}

enum class Rule { kAdamW, kAst, kAdamS };

// Five steps of one rule on both backends from the same state; compares w, m, v after each.
int64_t run_rule(gc::Check& c, Rule rule, int64_t n, int shift) {
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, lambda = 2e-4f, alpha = 0.3f;
  auto w = gc::normal(n, 0.02f);
  for (int64_t i = 0; i < n; i += 7) w[i] = i % 2 ? -0.0f : 0.0f;  // sign(0) = 0 in AdamS
  std::vector<float> m(n, 0.0f), v(n, 0.0f), mask = random_mask(n);
  Dev dw(w, shift), dm(m, shift), dv(v, shift), dg(std::vector<float>(n), shift), dmask(mask, shift);
  const char* names[] = {"adamw", "ast", "adams"};
  int64_t compared = 0;
  for (int64_t t = 1; t <= 5; t++) {
    const auto g = gradient(n);
    if (t == 3) {  // a mask refresh mid-run
      mask = random_mask(n);
      dmask.upload(mask);
    }
    dg.upload(g);
    switch (rule) {
      case Rule::kAdamW:
        sieve::cpu::adamw_update(w.data(), m.data(), v.data(), g.data(), lr, b1, b2, eps, wd, t, n);
        sieve::cuda::adamw_update(dw.get(), dm.get(), dv.get(), dg.get(), lr, b1, b2, eps, wd, t, n, 0);
        break;
      case Rule::kAst:
        sieve::cpu::ast_update(w.data(), m.data(), v.data(), g.data(), mask.data(), lr, b1, b2, eps, wd, lambda, t, n);
        sieve::cuda::ast_update(dw.get(), dm.get(), dv.get(), dg.get(), dmask.get(), lr, b1, b2, eps, wd, lambda, t, n,
                                0);
        break;
      case Rule::kAdamS:
        sieve::cpu::adams_update(w.data(), m.data(), v.data(), g.data(), mask.data(), lr, b1, b2, eps, alpha, lambda,
                                 t, n);
        sieve::cuda::adams_update(dw.get(), dm.get(), dv.get(), dg.get(), dmask.get(), lr, b1, b2, eps, alpha, lambda,
                                  t, n, 0);
        break;
    }
    const std::vector<float>* ref[3] = {&w, &m, &v};
    const Dev* out[3] = {&dw, &dm, &dv};
    const char* what[3] = {"w", "m", "v"};
    for (int j = 0; j < 3; j++) {
      const auto got = out[j]->download();
      const int64_t at = first_difference(got, *ref[j]);
      compared++;
      if (at >= 0) {
        char buf[240];
        snprintf(buf, sizeof buf, "%s n=%lld%s t=%lld: %s[%lld] = %.9g, CPU %.9g", names[(int)rule], (long long)n,
                 shift ? " misaligned" : "", (long long)t, what[j], (long long)at, got[at], (*ref[j])[at]);
        c.expect(false, buf);
        return compared;  // the states have diverged: later steps say nothing new
      }
    }
  }
  return compared;
}

void check_rule(gc::Check& c, Rule rule) {
  int64_t compared = 0;
  for (int64_t n : {int64_t(1), int64_t(5), int64_t(4096), int64_t(1 << 20) + 3})
    for (int shift : {0, 1}) compared += run_rule(c, rule, n, shift);
  c.equal(std::to_string(compared) + " states (w, m, v after each step)", {}, {});
}

}  // namespace

SIEVE_GPU_CHECK(adamw_update_matches_cpu_bitwise) { check_rule(c, Rule::kAdamW); }
SIEVE_GPU_CHECK(ast_update_matches_cpu_bitwise) { check_rule(c, Rule::kAst); }
SIEVE_GPU_CHECK(adams_update_matches_cpu_bitwise) { check_rule(c, Rule::kAdamS); }

SIEVE_GPU_CHECK(global_norm_matches_cpu) {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(16384), int64_t(16385), int64_t(1 << 22) + 7})
    for (int shift : {0, 1}) {
      const auto x = gradient(n);
      const double ref = sieve::cpu::global_norm(x.data(), n);
      Dev dx(x, shift);
      DeviceBuffer<double> scratch(sieve::cuda::global_norm_scratch(n)), norm(1), again(1);
      sieve::cuda::global_norm(norm.get(), dx.get(), n, scratch.get(), 0);
      sieve::cuda::global_norm(again.get(), dx.get(), n, scratch.get(), 0);
      const double got = norm.download()[0], got2 = again.download()[0];
      const double rel = std::fabs(got - ref) / std::max(std::fabs(ref), 1e-300);
      char buf[200];
      snprintf(buf, sizeof buf, "n=%lld%s: %.17g, CPU %.17g (relative %.2e > 1e-12)", (long long)n,
               shift ? " misaligned" : "", got, ref, rel);
      c.expect(rel <= 1e-12, buf);
      c.expect(std::memcmp(&got, &got2, sizeof(double)) == 0, "n=" + std::to_string(n) + ": a second call gave other bits");
    }
}
