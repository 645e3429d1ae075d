// gptq_factor.cc — GPTQ's factor (the damped Hessian's inverse Cholesky factor, O(n^3) in
// double, cpu/quant.h) against its dot-product form (kernels/test/reference.h), side by side on
// the same matrices, at the input widths of GPT-2 small (768, 3072) and between. Both give the
// same bits (checked here too); the figure is the blocked form's speed-up.
//
//   cmake -S kernels -B build/native -G Ninja && cmake --build build/native
//   g++ -std=c++17 -O3 -fopenmp -ffp-contract=off -mavx2 -Ikernels -Ikernels/cpu -Ikernels/include \
//     bench/cpu/gptq_factor.cc build/native/libsieve_engine.a -lopenblas -o build/gptq_factor && build/gptq_factor
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "core/quant.h"
#include "test/reference.h"

namespace {

double seconds(const std::chrono::steady_clock::time_point& a) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count();
}

}  // namespace

int main() {
  std::printf("| n | blocked s | dot-product s | speed-up | same bits |\n| ---: | ---: | ---: | ---: | --- |\n");
  for (int64_t n : {768, 1536, 3072}) {
    // a Gram matrix of 256 random rows, damped as GPTQ damps it
    std::mt19937_64 rng(1);
    std::normal_distribution<double> normal;
    std::vector<double> X(256 * n), H(n * n, 0.0);
    for (double& x : X) x = normal(rng);
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < n; a++)
      for (int64_t r = 0; r < 256; r++)
        for (int64_t b = 0; b < n; b++) H[a * n + b] += X[r * n + a] * X[r * n + b];
    for (int64_t i = 0; i < n; i++) H[i * n + i] += 1.0;
    auto t = std::chrono::steady_clock::now();
    const std::vector<double> blocked = sieve::inverse_cholesky_upper(H, n);
    const double tb = seconds(t);
    t = std::chrono::steady_clock::now();
    const std::vector<double> dots = ref::gptq_factor(H, n);
    const double td = seconds(t);
    std::printf("| %lld | %.2f | %.2f | %.1fx | %s |\n", (long long)n, tb, td, td / tb,
                std::memcmp(blocked.data(), dots.data(), blocked.size() * sizeof(double)) == 0 ? "yes" : "NO");
  }
  std::printf("threads: %d\n", omp_get_max_threads());
}
