// main.cu — runs the registered GPU checks (check.h) and prints their table.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>

#include "check.h"
#include "core/error.h"
#include "cuda/common.cuh"

namespace sieve::gpu_check {

namespace {
struct Entry {
  const char* name;
  Body body;
};
std::vector<Entry>& registry() {
  static std::vector<Entry> r;
  return r;
}
}  // namespace

Registered::Registered(const char* name, Body body) { registry().push_back({name, std::move(body)}); }

std::mt19937_64& rng() {
  static std::mt19937_64 g(std::random_device{}());
  return g;
}

std::vector<float> normal(int64_t n, float sd) {
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = d(rng());
  return v;
}

std::vector<float> with_ties(int64_t n) {
  std::uniform_int_distribution<int> level(0, 3), sign(0, 1);
  std::vector<float> v((size_t)n);
  for (auto& x : v) x = (sign(rng()) ? 1.0f : -1.0f) * 0.25f * (float)level(rng());
  return v;
}

void Check::expect(bool cond, const std::string& what) {
  if (!cond) failures_.push_back(what);
}

template <class R>
static void close_impl(Check& c, std::string& detail, const std::string& what, const std::vector<float>& out,
                       const std::vector<R>& ref, double tol) {
  if (out.size() != ref.size()) {
    c.expect(false, what + ": " + std::to_string(out.size()) + " values, reference has " + std::to_string(ref.size()));
    return;
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); i++) {
    const double d = (double)out[i] - (double)ref[i];
    num += d * d;
    den += (double)ref[i] * (double)ref[i];
  }
  const double err = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
  char buf[160];
  snprintf(buf, sizeof buf, "%s %.1e", what.c_str(), err);
  detail += (detail.empty() ? "" : "; ") + std::string(buf);
  snprintf(buf, sizeof buf, "%s: relative error %.3e over tolerance %.1e", what.c_str(), err, tol);
  c.expect(err <= tol, buf);  // NaN fails: the comparison is false
}

void Check::close(const std::string& what, const std::vector<float>& out, const std::vector<double>& ref, double tol) {
  close_impl(*this, detail_, what, out, ref, tol);
}
void Check::close(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref, double tol) {
  close_impl(*this, detail_, what, out, ref, tol);
}

void Check::equal(const std::string& what, const std::vector<float>& out, const std::vector<float>& ref) {
  int64_t diff = 0, first = -1;
  for (size_t i = 0; i < std::min(out.size(), ref.size()); i++)
    if (std::memcmp(&out[i], &ref[i], sizeof(float)) != 0 && diff++ == 0) first = (int64_t)i;
  if (out.size() != ref.size() || diff) {
    char buf[200];
    snprintf(buf, sizeof buf, "%s: %lld of %zu differ (first at %lld: %g vs %g)", what.c_str(), (long long)diff,
             ref.size(), (long long)first, first >= 0 ? out[first] : 0.0, first >= 0 ? ref[first] : 0.0);
    failures_.push_back(buf);
  }
  detail_ += (detail_.empty() ? "" : "; ") + what + " exact";
}

}  // namespace sieve::gpu_check

int main(int argc, char** argv) {
  using namespace sieve::gpu_check;
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    fprintf(stderr, "sieve_gpu_checks: no CUDA device\n");
    return 2;
  }
  printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
  int passed = 0, failed = 0;
  for (auto& e : registry()) {
    bool wanted = argc < 2;
    for (int i = 1; i < argc; i++) wanted |= strstr(e.name, argv[i]) != nullptr;
    if (!wanted) continue;
    Check c;
    std::string error;
    try {
      e.body(c);
      cudaError_t sync = cudaDeviceSynchronize();
      if (sync != cudaSuccess) error = std::string("device error: ") + cudaGetErrorString(sync);
    } catch (const sieve::Error& x) {
      error = x.message;
    } catch (const std::exception& x) {
      error = x.what();
    }
    const bool ok = c.ok() && error.empty();
    (ok ? passed : failed)++;
    printf("%-4s %-48s %s\n", ok ? "ok" : "FAIL", e.name, c.detail().c_str());
    for (auto& f : c.failures()) printf("       %s\n", f.c_str());
    if (!error.empty()) printf("       threw: %s\n", error.c_str());
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
