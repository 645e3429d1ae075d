// util.h — helpers shared by the native tests: seeded data, comparisons that print the
// worst element, central differences, and a small RAII model handle whose buffers are
// reached through the copy calls (sieve_model_read / sieve_model_write), as on any device.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "reference.h"
#include "sieve.h"

namespace testutil {

inline std::vector<float> randn(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

inline std::vector<int32_t> randint(int64_t n, int32_t hi, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int32_t> d(0, hi - 1);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = d(g);
  return v;
}

inline std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// max |a - b| / max(max |b|, floor): a relative error against the scale of the reference.
// Prints the worst element when it exceeds tol.
template <class A, class B>
::testing::AssertionResult close(const A& a, const B& b, double tol, const char* what, double floor = 1e-12) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  double scale = floor, worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < b.size(); i++) scale = std::max(scale, std::fabs((double)b[i]));
  for (size_t i = 0; i < b.size(); i++) {
    const double d = std::fabs((double)a[i] - (double)b[i]);
    if (!(d <= worst)) worst = d, at = i;  // NaN-safe
  }
  const double rel = worst / scale;
  if (rel <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": max rel diff " << rel << " > " << tol << " at [" << at
                                       << "]: got " << (double)a[at] << ", want " << (double)b[at] << " (scale "
                                       << scale << ")";
}

inline bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// Central difference of f at coordinate i of x (x is restored).
inline double central_diff(const std::function<double(const std::vector<double>&)>& f, std::vector<double>& x,
                           int64_t i, double h) {
  const double x0 = x[i];
  x[i] = x0 + h;
  const double fp = f(x);
  x[i] = x0 - h;
  const double fm = f(x);
  x[i] = x0;
  return (fp - fm) / (2 * h);
}

// A few indices spread over [0, n) (all of them when n is small).
inline std::vector<int64_t> sample_indices(int64_t n, int64_t k, uint32_t seed) {
  std::vector<int64_t> idx;
  if (n <= k) {
    for (int64_t i = 0; i < n; i++) idx.push_back(i);
    return idx;
  }
  std::mt19937 g(seed);
  std::uniform_int_distribution<int64_t> d(0, n - 1);
  for (int64_t i = 0; i < k; i++) idx.push_back(d(g));
  return idx;
}

#define SIEVE_OK_OR_FAIL(call) ASSERT_EQ((call), SIEVE_OK) << sieve_last_error()

// RAII model handle (a CPU model)
struct ModelHandle {
  sieve_model* m = nullptr;
  explicit ModelHandle(const sieve_config& c) {
    if (sieve_model_create(&m, &c, SIEVE_DEVICE_CPU) != SIEVE_OK) ADD_FAILURE() << "create: " << sieve_last_error();
  }
  ~ModelHandle() { sieve_model_destroy(m); }
  ModelHandle(const ModelHandle&) = delete;
  ModelHandle& operator=(const ModelHandle&) = delete;
  // A copy of the flat buffer `which` (SIEVE_BUFFER_*): P floats.
  std::vector<float> read(int32_t which) const {
    std::vector<float> v(num_params());
    EXPECT_EQ(sieve_model_read(m, which, 0, (int64_t)v.size(), v.data()), SIEVE_OK) << sieve_last_error();
    return v;
  }
  // Replaces the whole flat buffer `which` (v has P floats).
  void write(int32_t which, const std::vector<float>& v) {
    EXPECT_EQ((int64_t)v.size(), num_params());
    EXPECT_EQ(sieve_model_write(m, which, 0, (int64_t)v.size(), v.data()), SIEVE_OK) << sieve_last_error();
  }
  int64_t num_params() const {
    int64_t n = 0;
    sieve_model_num_params(m, &n);
    return n;
  }
  int64_t offset(const std::string& name) const {
    int64_t idx = -1;
    if (sieve_model_find_tensor(m, name.c_str(), &idx) != SIEVE_OK) {
      ADD_FAILURE() << sieve_last_error();
      return 0;
    }
    sieve_tensor_info info;
    sieve_model_tensor(m, idx, &info);
    return info.offset;
  }
  int64_t index(const std::string& name) const {
    int64_t idx = -1;
    EXPECT_EQ(sieve_model_find_tensor(m, name.c_str(), &idx), SIEVE_OK) << sieve_last_error();
    return idx;
  }
  std::vector<sieve_tensor_info> tensors() const {
    int64_t n = 0;
    sieve_model_num_tensors(m, &n);
    std::vector<sieve_tensor_info> out(n);
    for (int64_t i = 0; i < n; i++) sieve_model_tensor(m, i, &out[i]);
    return out;
  }
  bool has(const std::string& name) const {
    int64_t idx = -1;
    return sieve_model_find_tensor(m, name.c_str(), &idx) == SIEVE_OK;
  }
  ref::Model reference(const sieve_config& c) const {
    ref::Model r{c, [this](const std::string& name) { return offset(name); }};
    r.has = [this](const std::string& name) { return has(name); };
    return r;
  }
};

inline sieve_config tiny_config(int32_t family) {
  sieve_config c{};
  c.family = family;
  c.layers = 2;
  c.dim = 16;
  c.heads = 2;
  c.context = 8;
  c.vocab = 23;
  c.mlp_hidden = 24;
  c.norm_eps = 1e-5f;
  c.rope_theta = family == SIEVE_FAMILY_LLAMA ? 10000.0f : 0.0f;
  return c;
}

// Parameters with every kind of value exercised: matrices ~ N(0, 0.3), norm weights
// around 1, biases around 0 (a fresh init has zero biases and unit norms, which would
// hide mistakes in their gradients).
inline void randomize_params(ModelHandle& h, uint32_t seed) {
  std::vector<float> p(h.num_params());
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (const sieve_tensor_info& t : h.tensors())
    for (int64_t i = 0; i < t.size; i++) {
      const float r = d(g);
      p[t.offset + i] = t.kind == SIEVE_KIND_NORM ? 1.0f + 0.2f * r : t.kind == SIEVE_KIND_BIAS ? 0.1f * r : 0.3f * r;
    }
  h.write(SIEVE_BUFFER_PARAMS, p);
}

}  // namespace testutil
