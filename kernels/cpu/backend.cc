// backend.cc — the CPU backend object: describes itself (BLAS, default threads), makes
// CpuModels and runs the op-level quantization (quant.h) on the caller's threads.
#include "backend.h"

#include <atomic>

#include "gemm.h"
#include "model.h"
#include "quant.h"

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

  void quantize_rtn(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                    int64_t cols, const QuantGrid& grid) const override {
    cpu::quantize_rtn(codes, scales, zeros, w, mask, rows, cols, grid);
  }

  void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows,
                  int64_t cols, int64_t group) const override {
    cpu::dequantize(out, codes, scales, zeros, rows, cols, group);
  }

  void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
            int64_t rows, const QuantGrid& grid) const override {
    cpu::gptq(codes, scales, zeros, w, mask, plan, rows, grid);
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
