// bench.h — the GPU benchmarks' harness (bench/gpu/*.cu, one binary: build-gpu/sieve_gpu_bench).
//
// Register a benchmark with SIEVE_GPU_BENCH(name) { ... b.row({...}); }. Timing follows
// ../shared's method: CUDA events around the region, warm-up first, the median of many
// repetitions, inputs random (never zeros). Each row is printed as a table line and, with
// --json FILE, appended as one JSON object per line, for bench/gpu/report.ts, as soon as it is
// measured: a run stopped by a time limit keeps every row it finished.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sieve::gpu_bench {

struct Row {
  std::string target;                   // DESIGN.md id ("G1", "G3"...) or "" for a reference figure
  std::string what;                     // e.g. "2:4 GEMM M=16384 K=4096 N=11008"
  std::map<std::string, double> values;  // e.g. {"ms": 0.41, "TFLOP/s": 702, "vs dense": 1.52}
};

class Bench {
 public:
  using Sink = std::function<void(const Row&)>;
  explicit Bench(Sink sink) : sink_(std::move(sink)) {}
  void row(Row r) { sink_(r); }

 private:
  Sink sink_;
};

// Median milliseconds of fn over reps timed runs (CUDA events on the default stream) after
// warmup untimed ones. fn(i) gets the repetition index, so it can rotate among input sets
// larger than L2 together.
double median_ms(const std::function<void(int)>& fn, int warmup = 10, int reps = 50);

// The device-to-device copy bandwidth in bytes/s (read + written), measured over bytes of
// data: the ceiling of G3/G4.
double copy_bandwidth(size_t bytes);

using Body = std::function<void(Bench&)>;
struct Registered {
  Registered(const char* name, Body body);
};

}  // namespace sieve::gpu_bench

#define SIEVE_GPU_BENCH(name)                                                 \
  static void name(::sieve::gpu_bench::Bench& b);                            \
  static ::sieve::gpu_bench::Registered name##_registered(#name, name);       \
  static void name(::sieve::gpu_bench::Bench& b)
