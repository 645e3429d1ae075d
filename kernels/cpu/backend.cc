// backend.cc — the CPU backend object: describes itself (BLAS, default threads) and makes
// CpuModels.
#include "backend.h"

#include <atomic>

#include "gemm.h"
#include "model.h"

namespace sieve::cpu {

namespace {

std::atomic<int> g_default_threads{0};

class CpuBackend final : public Backend {
 public:
  int32_t device() const override { return SIEVE_DEVICE_CPU; }

  void info(sieve_backend_info* out) const override {
    out->abi_version = SIEVE_ABI_VERSION;
    out->name = "cpu";
    out->blas = blas_name();
    out->default_threads = default_threads();
  }

  std::unique_ptr<ModelBackend> create_model(const sieve_model& model) const override {
    return std::make_unique<CpuModel>(model);
  }
};

}  // namespace

const Backend& backend() {
  static const CpuBackend instance;
  return instance;
}

int default_threads() {
  int t = g_default_threads.load();
  if (t <= 0) {
    t = omp_get_max_threads();  // OMP_NUM_THREADS, or the core count
    g_default_threads.store(t);
  }
  return t;
}

void set_default_threads(int threads) { g_default_threads.store(threads); }

}  // namespace sieve::cpu
