// backend.cu — the CUDA backend object: describes the GPU it runs on and makes CudaModels.
// The core finds it through the one C symbol below when a model asks for device cuda
// (core/backends.cc loads libsieve_cuda.so on first use).
#include <omp.h>

#include <cstdio>
#include <string>

#include <cusparseLt.h>

#include "model.cuh"
#include "quant.cuh"

namespace sieve::cuda {

namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    int device = 0, runtime = 0;
    SIEVE_CUDA(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    SIEVE_CUDA(cudaGetDeviceProperties(&prop, device));
    SIEVE_CUDA(cudaRuntimeGetVersion(&runtime));
    char text[1024];
    std::snprintf(text, sizeof text, "%s (sm_%d%d, %.0f GiB), CUDA runtime %d.%d, cuBLASLt %zu, %s", prop.name,
                  prop.major, prop.minor, (double)prop.totalGlobalMem / (1 << 30), runtime / 1000,
                  (runtime % 1000) / 10, cublasLtGetVersion(), sparse_library().c_str());
    description_ = text;
  }

  // "cuSPARSELt M.m.p": the library loaded decides the 2:4 products' speed and bits, so a run records
  // it (and `sieve reproduce` names it when it changed). Never fatal: the dense path needs none of it.
  static std::string sparse_library() {
    int major = 0, minor = 0, patch = 0;
    if (cusparseLtGetProperty(MAJOR_VERSION, &major) != CUSPARSE_STATUS_SUCCESS ||
        cusparseLtGetProperty(MINOR_VERSION, &minor) != CUSPARSE_STATUS_SUCCESS ||
        cusparseLtGetProperty(PATCH_LEVEL, &patch) != CUSPARSE_STATUS_SUCCESS)
      return "cuSPARSELt (version unknown)";
    return "cuSPARSELt " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  }

  int32_t device() const override { return SIEVE_DEVICE_CUDA; }

  void info(sieve_backend_info* out) const override {
    out->abi_version = SIEVE_ABI_VERSION;
    out->name = "cuda";
    out->blas = description_.c_str();
    // a GPU model's host work: its initialisation's draws (core/init.cc)
    out->default_threads = omp_get_max_threads();
  }

  std::unique_ptr<ModelBackend> create_model(const sieve_model& model) const override {
    return std::make_unique<CudaModel>(model);
  }

  void quantize_rtn(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                    int64_t cols, const QuantGrid& grid) const override {
    quantize_rtn_host(codes, scales, zeros, w, mask, rows, cols, grid);
  }
  void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows,
                  int64_t cols, int64_t group) const override {
    dequantize_host(out, codes, scales, zeros, rows, cols, group);
  }
  void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
            int64_t rows, const QuantGrid& grid) const override {
    gptq_host(codes, scales, zeros, w, mask, plan, rows, grid);
  }

 private:
  std::string description_;
};

}  // namespace

const Backend& backend() {
  static const CudaBackend instance;  // the first use finds the GPU (or throws, naming why)
  return instance;
}

}  // namespace sieve::cuda

// The loader's entry point: the backend, or null with the reason in `why` (a missing driver
// or no GPU is an answer, not a crash).
extern "C" __attribute__((visibility("default"))) const sieve::Backend* sieve_cuda_backend(char* why, size_t size) {
  try {
    return &sieve::cuda::backend();
  } catch (const sieve::Error& e) {
    std::snprintf(why, size, "%s", e.message.c_str());
    return nullptr;
  }
}
