// common.cu — the error reporting of common.cuh.
#include "common.cuh"

namespace sieve::cuda {

void fail_cuda(cudaError_t e, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a sticky launch error so the next call reports its own
  fail(e == cudaErrorMemoryAllocation ? SIEVE_E_OUT_OF_MEMORY : SIEVE_E_INTERNAL, "CUDA: %s failed: %s (%s:%d)", call,
       cudaGetErrorString(e), file, line);
}

void fail_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  fail(s == CUBLAS_STATUS_ALLOC_FAILED ? SIEVE_E_OUT_OF_MEMORY : SIEVE_E_INTERNAL, "cuBLASLt: %s failed: %s (%s:%d)", call,
       cublasLtGetStatusString(s), file, line);
}

void fail_cusparselt(cusparseStatus_t s, const char* call, const char* file, int line) {
  fail(s == CUSPARSE_STATUS_ALLOC_FAILED ? SIEVE_E_OUT_OF_MEMORY : SIEVE_E_INTERNAL, "cuSPARSELt: %s failed: %s (%s:%d)",
       call, cusparseLtGetErrorString(s), file, line);
}

}  // namespace sieve::cuda
