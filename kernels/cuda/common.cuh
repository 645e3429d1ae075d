// common.cuh — what every CUDA kernel file shares: error checks that turn a failed CUDA,
// cuBLASLt or cuSPARSELt call into a sieve::Error naming the call (out of memory as
// SIEVE_E_OUT_OF_MEMORY), launch geometry, and bf16 conversions.
//
// Promises: nothing here synchronises the device; a launch is checked with SIEVE_LAUNCHED()
// right after it (cudaGetLastError), so a bad configuration is reported where it happened.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cusparseLt.h>

#include <cstdint>

#include "core/error.h"

namespace sieve::cuda {

[[noreturn]] void fail_cuda(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t s, const char* call, const char* file, int line);
[[noreturn]] void fail_cusparselt(cusparseStatus_t s, const char* call, const char* file, int line);

#define SIEVE_CUDA(call)                                                               \
  do {                                                                                 \
    cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) ::sieve::cuda::fail_cuda(e_, #call, __FILE__, __LINE__);    \
  } while (0)
#define SIEVE_CUBLAS(call)                                                                         \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS) ::sieve::cuda::fail_cublas(s_, #call, __FILE__, __LINE__);    \
  } while (0)
#define SIEVE_CUSPARSELT(call)                                                                         \
  do {                                                                                                 \
    cusparseStatus_t s_ = (call);                                                                      \
    if (s_ != CUSPARSE_STATUS_SUCCESS) ::sieve::cuda::fail_cusparselt(s_, #call, __FILE__, __LINE__);  \
  } while (0)
// After every kernel launch.
#define SIEVE_LAUNCHED() SIEVE_CUDA(cudaGetLastError())

// Whether p is a multiple of `bytes` (a power of two); null is.
inline bool aligned(const void* p, uintptr_t bytes) { return ((uintptr_t)p & (bytes - 1)) == 0; }

// Blocks of `threads` covering n items, capped so a grid-stride loop does the rest.
inline unsigned grid_for(int64_t n, int threads, int64_t cap = 65535LL * 8) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return (unsigned)(blocks < cap ? blocks : cap);
}

}  // namespace sieve::cuda
