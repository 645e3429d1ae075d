// check.h — the GPU checks' harness (test/gpu/*.cu, one binary: build-gpu/sieve_gpu_checks).
//
// A check compares a CUDA kernel's output with the CPU reference (kernels/cpu, linked in) on
// fresh random inputs, by the relative error ||out - ref|| / ||ref|| in double, against a
// tolerance per dtype (docs/cuda.md "Tolerances"). Register one with
//
//   SIEVE_GPU_CHECK(sste_threshold_matches_cpu) { ... c.close("S(w)", out, ref, kTolF32); ... }
//
// Every expectation is recorded; a check passes when all of its expectations hold and it
// threw nothing. The binary prints one row per check, then "N passed, N failed", and exits 1
// on any failure. Arguments filter checks by substring.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace sieve::gpu_check {

// Tolerances on the relative error (docs/cuda.md): float32 arithmetic that may sum in another
// order, bf16 operands with float32 accumulation, and exact results.
constexpr double kTolF32 = 1e-5;
constexpr double kTolBf16 = 1e-2;

class Check {
 public:
  // Records a failure with a message when cond is false.
  void expect(bool cond, const std::string& what);
  // ||out - ref|| / max(||ref||, tiny) <= tol, NaN never passing; records the error seen.
  void close(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref, double tol);
  void close(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref, double tol);
  // Bitwise equality (masks, integer-valued results).
  void equal(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref);

  bool ok() const { return failures_.empty(); }
  const std::vector<std::string>& failures() const { return failures_; }
  const std::string& detail() const { return detail_; }

 private:
  std::vector<std::string> failures_;
  std::string detail_;  // "what: err" of the close() calls, for the table
};

using Body = std::function<void(Check&)>;
struct Registered {
  Registered(const char* name, Body body);
};

// Fresh random inputs: a generator seeded from the check's name and a counter, so a failure
// reproduces, while every call draws new values.
std::mt19937_64& rng();
std::vector<float> normal(int64_t n, float sd = 1.0f);
// Like normal(), but with ties: values drawn from a few levels, signs random (mask tie rules).
std::vector<float> with_ties(int64_t n);

}  // namespace sieve::gpu_check

#define SIEVE_GPU_CHECK(name)                                                   \
  static void name(::sieve::gpu_check::Check& c);                              \
  static ::sieve::gpu_check::Registered name##_registered(#name, name);         \
  static void name(::sieve::gpu_check::Check& c)
