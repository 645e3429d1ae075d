// gemm.cc — BLAS dispatch, the portable fallback, and the deterministic parallel split.
#include "gemm.h"

#include <algorithm>
#include <mutex>
#include <vector>

#ifdef SIEVE_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace sieve::cpu {

namespace {

#ifdef SIEVE_HAVE_OPENBLAS
// The engine calls BLAS from inside its own OpenMP blocks, so the library must stay at one
// thread; only the benchmark reference raises it, and puts it back.
std::once_flag blas_once;
void blas_single_threaded() {
  std::call_once(blas_once, [] { openblas_set_num_threads(1); });
}
#endif

// ---- portable GEMM: pack a (kc x nc) panel of op(B), then update four rows of C at a
// time so each loaded B value feeds four multiply-adds. Each C element sums over k in
// increasing order, whatever the blocking.
constexpr int64_t kPortableKc = 256;
constexpr int64_t kPortableNc = 512;

inline float at(const float* X, int64_t ld, bool trans, int64_t r, int64_t c) {
  return trans ? X[c * ld + r] : X[r * ld + c];
}

}  // namespace

void sgemm_portable(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? 0.0f : beta * c[j];
  }
  thread_local std::vector<float> panel;
  panel.resize(kPortableKc * kPortableNc);
  for (int64_t j0 = 0; j0 < N; j0 += kPortableNc) {
    const int64_t nb = std::min(kPortableNc, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += kPortableKc) {
      const int64_t kb = std::min(kPortableKc, K - k0);
      for (int64_t k = 0; k < kb; k++)
        for (int64_t j = 0; j < nb; j++) panel[k * nb + j] = at(B, ldb, trans_b, k0 + k, j0 + j);
      int64_t i = 0;
      for (; i + 4 <= M; i += 4) {
        float* c0 = C + (i + 0) * ldc + j0;
        float* c1 = C + (i + 1) * ldc + j0;
        float* c2 = C + (i + 2) * ldc + j0;
        float* c3 = C + (i + 3) * ldc + j0;
        for (int64_t k = 0; k < kb; k++) {
          const float a0 = alpha * at(A, lda, trans_a, i + 0, k0 + k);
          const float a1 = alpha * at(A, lda, trans_a, i + 1, k0 + k);
          const float a2 = alpha * at(A, lda, trans_a, i + 2, k0 + k);
          const float a3 = alpha * at(A, lda, trans_a, i + 3, k0 + k);
          const float* b = panel.data() + k * nb;
          for (int64_t j = 0; j < nb; j++) {
            c0[j] += a0 * b[j];
            c1[j] += a1 * b[j];
            c2[j] += a2 * b[j];
            c3[j] += a3 * b[j];
          }
        }
      }
      for (; i < M; i++) {
        float* c = C + i * ldc + j0;
        for (int64_t k = 0; k < kb; k++) {
          const float a = alpha * at(A, lda, trans_a, i, k0 + k);
          const float* b = panel.data() + k * nb;
          for (int64_t j = 0; j < nb; j++) c[j] += a * b[j];
        }
      }
    }
  }
}

void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                  int64_t ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef SIEVE_HAVE_OPENBLAS
  blas_single_threaded();
  if (K <= 0) {  // BLAS leaves C untouched for K = 0 only when beta = 1; be explicit
    sgemm_portable(trans_a, trans_b, M, N, 0, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
              (blasint)ldc);
#else
  sgemm_portable(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// The split: along the longer side of C, into a power-of-two number of parts: at most
// kMaxParts, each at least kMinPart rows or columns, but two whenever the side allows it
// (so two cores always share the work); part sizes are multiples of 16. Each part repacks
// the operand it does not cut, so fewer, larger parts are faster: on the 2-core reference
// machine 2-4 parts match or beat OpenBLAS's own threading at the model's shapes, while 8
// lose 5-10% (bench/RESULTS.md). Small products stay whole: a parallel region costs more.
constexpr int64_t kMaxParts = 4;
constexpr int64_t kMinPart = 256;
constexpr double kMinParallelFlops = 2e6;

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           GemmStats* stats) {
  const double t0 = stats ? now_seconds() : 0.0;
  const double flops = 2.0 * (double)M * (double)N * (double)K;
  const bool split_rows = M >= N;
  const int64_t len = split_rows ? M : N;
  int64_t parts = 1;
  if (flops >= kMinParallelFlops) {
    while (parts * 2 <= kMaxParts && len / (parts * 2) >= kMinPart) parts *= 2;
    if (parts < 2 && len >= 64) parts = 2;
  }
  int64_t block = (len + parts - 1) / parts;
  block = (block + 15) / 16 * 16;
  const int64_t nblocks = (len + block - 1) / block;
  if (nblocks <= 1) {
    sgemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < nblocks; p++) {
      const int64_t s = p * block;
      const int64_t n = std::min(block, len - s);
      if (split_rows) {
        const float* Ap = trans_a ? A + s : A + s * lda;
        sgemm_serial(trans_a, trans_b, n, N, K, alpha, Ap, lda, B, ldb, beta, C + s * ldc, ldc);
      } else {
        const float* Bp = trans_b ? B + s * ldb : B + s;
        sgemm_serial(trans_a, trans_b, M, n, K, alpha, A, lda, Bp, ldb, beta, C + s, ldc);
      }
    }
  }
  if (stats) {
    stats->seconds += now_seconds() - t0;
    stats->flops += flops;
  }
}

const char* blas_name() {
#ifdef SIEVE_HAVE_OPENBLAS
  // "OpenBLAS <version> <build options> <core picked at run time> MAX_THREADS=<n>"
  return openblas_get_config();
#else
  return nullptr;
#endif
}

void sgemm_library(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                   int64_t ldc, int threads) {
#ifdef SIEVE_HAVE_OPENBLAS
  blas_single_threaded();
  openblas_set_num_threads(threads);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              (blasint)M, (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C,
              (blasint)ldc);
  openblas_set_num_threads(1);
#else
  ThreadScope scope(threads);
  sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
#endif
}

}  // namespace sieve::cpu
