// main.cu — runs the registered GPU benchmarks (bench.h): a table on stdout, JSON lines with --json.
//
//   sieve_gpu_bench [--json FILE] [name-substring...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "bench.h"
#include "core/error.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"

namespace sieve::gpu_bench {

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

double median_ms(const std::function<void(int)>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; i++) fn(i);
  cudaEvent_t start, stop;
  SIEVE_CUDA(cudaEventCreate(&start));
  SIEVE_CUDA(cudaEventCreate(&stop));
  std::vector<float> ms((size_t)reps);
  for (int i = 0; i < reps; i++) {
    SIEVE_CUDA(cudaEventRecord(start));
    fn(warmup + i);
    SIEVE_CUDA(cudaEventRecord(stop));
    SIEVE_CUDA(cudaEventSynchronize(stop));
    SIEVE_CUDA(cudaEventElapsedTime(&ms[(size_t)i], start, stop));
  }
  SIEVE_CUDA(cudaEventDestroy(start));
  SIEVE_CUDA(cudaEventDestroy(stop));
  std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
  return ms[(size_t)reps / 2];
}

double copy_bandwidth(size_t bytes) {
  cuda::DeviceBuffer<char> a((int64_t)bytes), b((int64_t)bytes);
  SIEVE_CUDA(cudaMemset(a.get(), 1, bytes));
  const double ms = median_ms([&](int) { SIEVE_CUDA(cudaMemcpyAsync(b.get(), a.get(), bytes, cudaMemcpyDeviceToDevice)); });
  return 2.0 * (double)bytes / (ms * 1e-3);
}

}  // namespace sieve::gpu_bench

int main(int argc, char** argv) {
  using namespace sieve::gpu_bench;
  FILE* json = nullptr;
  std::vector<const char*> filters;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json") && i + 1 < argc) {
      json = fopen(argv[++i], "a");
      if (!json) {
        fprintf(stderr, "sieve_gpu_bench: cannot open %s\n", argv[i]);
        return 2;
      }
    } else {
      filters.push_back(argv[i]);
    }
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    fprintf(stderr, "sieve_gpu_bench: no CUDA device\n");
    return 2;
  }
  printf("device: %s (sm_%d%d, %d SMs, %.0f MiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
         prop.totalGlobalMem / 1048576.0);
  fflush(stdout);
  int failed = 0;
  for (auto& e : registry()) {
    bool wanted = filters.empty();
    for (auto f : filters) wanted |= strstr(e.name, f) != nullptr;
    if (!wanted) continue;
    // The stdout line also says how long the row took to set up and measure (not in the JSON):
    // where a bench's time goes when it runs past a call's limit.
    auto since = std::chrono::steady_clock::now();
    Bench b([&](const Row& r) {
      const auto now = std::chrono::steady_clock::now();
      printf("%-4s %-56s", r.target.c_str(), r.what.c_str());
      for (auto& [k, v] : r.values) printf("  %s %.4g", k.c_str(), v);
      printf("  (%.1f s)\n", std::chrono::duration<double>(now - since).count());
      since = now;
      fflush(stdout);
      if (json) {
        fprintf(json, "{\"bench\":\"%s\",\"target\":\"%s\",\"what\":\"%s\",\"device\":\"%s\"", e.name, r.target.c_str(),
                r.what.c_str(), prop.name);
        for (auto& [k, v] : r.values) fprintf(json, ",\"%s\":%.6g", k.c_str(), v);
        fprintf(json, "}\n");
        fflush(json);
      }
    });
    try {  // a bench that fails keeps the rows it finished, and the next benches run
      e.body(b);
    } catch (const sieve::Error& x) {
      printf("%s: FAILED: %s\n", e.name, x.message.c_str());
      failed++;
    } catch (const std::exception& x) {
      printf("%s: FAILED: %s\n", e.name, x.what());
      failed++;
    }
    fflush(stdout);
  }
  if (json) fclose(json);
  return failed ? 1 : 0;
}
