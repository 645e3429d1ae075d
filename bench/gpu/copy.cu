// copy.cu — the ceiling the memory-bound targets (G3, G4) are read against.
#include "bench.h"

SIEVE_GPU_BENCH(copy_bandwidth) {
  const double bw = sieve::gpu_bench::copy_bandwidth(size_t(2) << 30);
  b.row({"", "device-to-device copy, 2 GiB (read + written)", {{"TB/s", bw / 1e12}}});
}
