// gemm.cc — BLAS dispatch, the portable fallback, and the deterministic tile grid.
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

// The tile grid. Each tile is a separate BLAS call that packs its own rows of op(A) (K x rows)
// and columns of op(B) (K x cols), so on one core a tile costs about 1 + c (1/rows + 1/cols)
// times its share of one whole call, c ~ 28 with OpenBLAS's SkylakeX sgemm (measured on the
// 2-core machine: 1024 x 768 tiles run at 0.95 of one whole call, 512 x 384 at 0.88, 256 x 256
// at 0.85, 128 x 128 at 0.7). Fewer, squarer tiles are faster on each core; more tiles keep more
// cores busy. The grid is the compromise, a function of (M, N, K) only, never of the thread count:
//   - products under kMinParallelFlops stay whole (a parallel region costs more);
//   - the longer tile side is halved (its count of parts doubles; sides are rounded up to
//     multiples of 16, the micro-kernels' width) while there are fewer than kTargetTiles tiles,
//     the side stays at least kMinSide and the tile at least kMinTileFlops (~60 us of one core):
//     16 tiles of about equal size feed 16 cores and split evenly over 2, 4 or 8. At the
//     model's token-major shapes (4096 tokens x 768..3072) tiles stay at least 512 x 384;
//   - two tiles whenever a side is at least 64 long (and the product not small), so two cores
//     always share the work;
//   - past kTargetTiles a side is halved only while it stays at least kWideSide (under 3% lost
//     to packing), up to kMaxTiles: more tiles for larger products, never smaller ones.
// Weight gradients (C = OC x IC, K = tokens) are where the grid costs most: their sides are
// short, so 16 tiles of them are small (768 x 768 -> 192 x 192). K is never cut: every element
// of C is one BLAS dot product over all of K, in the order of its tile's call.
constexpr double kMinParallelFlops = 2e6;
constexpr double kMinTileFlops = 8e6;
constexpr int64_t kTargetTiles = 16;
constexpr int64_t kMaxTiles = 64;
constexpr int64_t kMinSide = 128;
constexpr int64_t kWideSide = 1024;
constexpr int64_t kQuantum = 16;

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The side of `parts` equal parts of len, rounded up to the quantum.
int64_t part_side(int64_t len, int64_t parts) { return ceil_div(ceil_div(len, parts), kQuantum) * kQuantum; }

}  // namespace

GemmTiles gemm_tiles(int64_t M, int64_t N, int64_t K) {
  GemmTiles t{M, N};
  if (M <= 0 || N <= 0 || 2.0 * (double)M * (double)N * (double)K < kMinParallelFlops) return t;
  int64_t parts_m = 1, parts_n = 1;
  for (;;) {
    const int64_t tiles = ceil_div(M, t.rows) * ceil_div(N, t.cols);
    if (tiles >= kMaxTiles) break;
    bool cut = false;
    for (int pass = 0; pass < 2 && !cut; pass++) {  // the longer side first (rows on a tie)
      const bool rows = (t.rows >= t.cols) == (pass == 0);
      const int64_t parts = 2 * (rows ? parts_m : parts_n);
      const int64_t side = part_side(rows ? M : N, parts);
      const int64_t current = rows ? t.rows : t.cols;
      const double tile_flops = 2.0 * (double)side * (double)(rows ? t.cols : t.rows) * (double)K;
      if (side >= current) continue;
      const bool more = tile_flops >= kMinTileFlops && (side >= kWideSide || (tiles < kTargetTiles && side >= kMinSide));
      if (more || (tiles < 2 && side >= 2 * kQuantum)) {
        (rows ? parts_m : parts_n) = parts;
        (rows ? t.rows : t.cols) = side;
        cut = true;
      }
    }
    if (!cut) break;
  }
  return t;
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           GemmStats* stats) {
  const double t0 = stats ? now_seconds() : 0.0;
  const GemmTiles t = gemm_tiles(M, N, K);
  const int64_t grid_m = ceil_div(M, t.rows), grid_n = ceil_div(N, t.cols);
  if (grid_m * grid_n <= 1) {
    sgemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    // Tiles are disjoint blocks of C and each one's bits depend only on its BLAS call, so
    // who runs it does not matter: dynamic, to even out unequal tiles and busy cores.
    // Row-major order: neighbouring tiles share their rows of op(A).
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < grid_m * grid_n; i++) {
      const int64_t r0 = (i / grid_n) * t.rows, c0 = (i % grid_n) * t.cols;
      const int64_t rows = std::min(t.rows, M - r0), cols = std::min(t.cols, N - c0);
      const float* Ai = trans_a ? A + r0 : A + r0 * lda;
      const float* Bi = trans_b ? B + c0 * ldb : B + c0;
      sgemm_serial(trans_a, trans_b, rows, cols, K, alpha, Ai, lda, Bi, ldb, beta, C + r0 * ldc + c0, ldc);
    }
  }
  if (stats) {
    stats->seconds += now_seconds() - t0;
    stats->flops += 2.0 * (double)M * (double)N * (double)K;
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
