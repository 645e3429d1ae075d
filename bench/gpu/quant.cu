// quant.cu — GPTQ on the GPU against the CPU backend, through sieve_gptq (device cuda and cpu,
// the CPU at the host's default thread count): the whole call (the host's plan — the factor of
// the damped Hessian, O(n^3) in double — plus the rows; on cuda also the copies), and the GPU's
// rows alone (the kernel, CUDA events). 4 bits, groups of 128, act_order off, a Hessian of rank
// 64 plus a diagonal; the two results are compared bit for bit ("same bits" 1).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench.h"
#include "core/quant.h"
#include "cuda/device_buffer.cuh"
#include "cuda/quant.cuh"
#include "sieve.h"

namespace {

using sieve::cuda::DeviceBuffer;

double wall_ms(const std::function<void()>& fn, int reps) {
  std::vector<double> t;
  for (int i = 0; i < reps; i++) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void run(int32_t device, std::vector<uint8_t>& codes, std::vector<float>& scales, std::vector<uint8_t>& zeros,
         const std::vector<float>& w, const std::vector<double>& H, int64_t rows, int64_t n) {
  if (sieve_gptq(device, codes.data(), scales.data(), zeros.data(), w.data(), H.data(), nullptr, rows, n, 4, 128, 0,
                 0.01, 0) != SIEVE_OK)
    sieve::fail(SIEVE_E_INTERNAL, "sieve_gptq: %s", sieve_last_error());
}

}  // namespace

SIEVE_GPU_BENCH(gptq) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal;
  const std::pair<int64_t, int64_t> shapes[] = {{3072, 768}, {768, 3072}};  // (rows, cols): OC x IC
  for (const auto& shape : shapes) {
    const int64_t rows = shape.first, n = shape.second;
    const int64_t G = rows * n / 128;
    std::vector<float> w(rows * n), B(n * 64);
    for (auto& x : w) x = normal(rng) * 0.02f;
    for (auto& x : B) x = normal(rng);
    std::vector<double> H(n * n, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = i == j ? 1.0 : 0.0;
        for (int64_t k = 0; k < 64; k++) s += (double)B[i * 64 + k] * B[j * 64 + k];
        H[i * n + j] = s;
      }
    std::vector<uint8_t> c1(rows * n), c2(rows * n), z1(G), z2(G);
    std::vector<float> s1(G), s2(G);
    run(SIEVE_DEVICE_CUDA, c2, s2, z2, w, H, rows, n);  // warm-up (loads the backend)
    const double cpu = wall_ms([&] { run(SIEVE_DEVICE_CPU, c1, s1, z1, w, H, rows, n); }, 3);
    const double cuda = wall_ms([&] { run(SIEVE_DEVICE_CUDA, c2, s2, z2, w, H, rows, n); }, 3);
    const bool same = c1 == c2 && z1 == z2 && std::memcmp(s1.data(), s2.data(), sizeof(float) * G) == 0;

    // the GPU's rows alone, on a plan built once
    const sieve::QuantGrid grid{4, 128, false};
    const sieve::GptqPlan plan = sieve::gptq_plan(H.data(), n, 0.01, false);
    const DeviceBuffer<float> dw = sieve::cuda::to_device(w);
    const DeviceBuffer<double> dU = sieve::cuda::to_device(plan.U);
    const DeviceBuffer<int64_t> dperm = sieve::cuda::to_device(plan.perm);
    const DeviceBuffer<uint8_t> ddead = sieve::cuda::to_device(std::vector<uint8_t>(plan.dead.begin(), plan.dead.end()));
    DeviceBuffer<uint8_t> dcodes(rows * n), dzeros(G);
    DeviceBuffer<float> dscales(G);
    const int64_t limit = sieve::cuda::gptq_shared_limit();
    DeviceBuffer<double> scratch(sieve::cuda::gptq_scratch(rows, n, limit));
    const sieve::cuda::GptqDevicePlan dplan{dU.get(), dperm.get(), ddead.get(), n, false};
    const double kernel = sieve::gpu_bench::median_ms(
        [&](int) {
          sieve::cuda::gptq(dcodes.get(), dscales.get(), dzeros.get(), dw.get(), nullptr, dplan, rows, grid,
                            scratch.get(), limit, 0);
        },
        2, 10);

    b.row({"", "GPTQ " + std::to_string(rows) + "x" + std::to_string(n) + " (4 bits, group 128)",
           {{"ms cpu", cpu},
            {"ms cuda", cuda},
            {"cpu / cuda", cpu / cuda},
            {"ms cuda rows", kernel},
            {"cpu threads", (double)omp_get_max_threads()},
            {"same bits", same ? 1.0 : 0.0}}});
  }
}
