// gemm.h — every matrix product of the CPU backend goes through here.
//
// Promises:
//   - sgemm() computes C (M, N) = alpha op(A) op(B) + beta C (row-major) by cutting C into
//     a fixed grid of tiles (gemm_tiles) that the calling thread's OpenMP team takes one by
//     one; each tile is one single-threaded BLAS call over the whole of K, writing its own
//     block of C. The grid depends only on (M, N, K), never on the thread count, so every
//     tile is the same BLAS call whoever runs it and the bits do not depend on the thread
//     count. The BLAS library never starts threads of its own (no oversubscription).
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

// The tile grid of C for an (M, N, K) product: tiles of rows x cols (multiples of 16, or the
// whole side; the last tile of a row or column of tiles may be shorter). One tile (M x N)
// means one BLAS call on the calling thread.
struct GemmTiles {
  int64_t rows, cols;
};
GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K);

// The engine's GEMM: the tiles of gemm_tiles(M, N, K) over the calling thread's OpenMP team. Adds its
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
