// gemm.h — every matrix product of the CPU backend goes through here.
//
// Promises:
//   - sgemm() computes C (M, N) = alpha op(A) op(B) + beta C (row-major) by cutting C into
//     a fixed set of blocks along its longer side and handing the blocks to OpenMP
//     threads; each block is one single-threaded BLAS call. The cut depends only on
//     (M, N, K), so the bits do not depend on the thread count, and the BLAS library never
//     starts threads of its own (no oversubscription with OpenMP).
//   - With OpenBLAS absent at build time, a portable cache-blocked GEMM takes its place
//     (blas_name() returns NULL then). The portable kernel is always compiled, for tests.
#pragma once

#include <cstdint>

#include "common.h"

namespace sieve::cpu {

// One thread, the configured library (BLAS or portable).
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc);

// One thread, always the portable kernel.
void sgemm_portable(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc);

// The engine's GEMM: fixed blocks of C over the calling thread's OpenMP team. Adds its
// wall time and 2 M N K to stats when given. Call from outside parallel regions.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           GemmStats* stats);

// "OpenBLAS <version> <build> <core>", or NULL when the portable GEMM is compiled in.
const char* blas_name();

// The BLAS library's own multithreaded sgemm over the whole matrix (benchmark reference);
// falls back to sgemm() for the portable build.
void sgemm_library(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc, int threads);

}  // namespace sieve::cpu
