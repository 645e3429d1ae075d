// quant.cc — RTN, GPTQ and dequantization (quant.h).
//
// GPTQ here is the CPU reference: each row is processed on its own, and every column's
// scaled error is subtracted from the rest of the row at once (in double). The reference
// implementation's lazy column batches only reorder those subtractions for GPU memory
// traffic; the result is the same up to rounding.
#include "quant.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common.h"

namespace sieve::cpu {

void quant_group_params(float* scale, uint8_t* zero, const float* w, const float* mask, int64_t n,
                        const QuantGrid& grid) {
  const int32_t maxq = grid.maxq();
  if (grid.symmetric) {
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
      if (!mask || mask[i] != 0.0f) m = std::max(m, std::fabs(w[i]));
    const float s = m / (float)((1 << (grid.bits - 1)) - 1);
    *scale = s > 0.0f ? s : 1.0f;
    *zero = (uint8_t)(1 << (grid.bits - 1));
    return;
  }
  float lo = 0.0f, hi = 0.0f;  // 0 always on the grid
  for (int64_t i = 0; i < n; i++)
    if (!mask || mask[i] != 0.0f) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  float s = (hi - lo) / (float)maxq;
  if (!(s > 0.0f)) s = 1.0f;
  *scale = s;
  const float z = std::nearbyint(-lo / s);
  *zero = (uint8_t)std::clamp(z, 0.0f, (float)maxq);
}

uint8_t quant_code(float w, float scale, uint8_t zero, const QuantGrid& grid) {
  const float c = std::nearbyint(w / scale) + (float)zero;
  return (uint8_t)std::clamp(c, 0.0f, (float)grid.maxq());
}

void quantize_rtn(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                  int64_t cols, const QuantGrid& grid) {
  const int64_t G = cols / grid.group;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t off = r * cols + g * grid.group;
      const float* mk = mask ? mask + off : nullptr;
      quant_group_params(&scales[r * G + g], &zeros[r * G + g], w + off, mk, grid.group, grid);
      for (int64_t i = 0; i < grid.group; i++)
        codes[off + i] = mk && mk[i] == 0.0f ? zeros[r * G + g]
                                             : quant_code(w[off + i], scales[r * G + g], zeros[r * G + g], grid);
    }
}

void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows, int64_t cols,
                int64_t group) {
  const int64_t G = cols / group;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < cols; i++) {
      const int64_t g = r * G + i / group;
      out[r * cols + i] = ((float)codes[r * cols + i] - (float)zeros[g]) * scales[g];
    }
}

// U (n, n) row-major upper triangular with H^-1 = U^T U, from H (n, n) symmetric positive
// definite (numerically: no pivot below 1e-10 of its diagonal entry): with J the reversal,
// J H J = L L^T (Cholesky), so H = R R^T with R = J L J upper, and U = R^-1. Throws if H is not
// positive definite.
//
// By panels of kPanel columns: a panel's columns by dot products within the panel (its diagonal
// block, then every row below it on its own), then the trailing columns updated by the whole
// panel as register-blocked row sweeps over many columns at once (vectorised). Every entry still
// receives exactly the dot-product form's operations: A[i][j] -= A[i][k] A[j][k] for k = 0, 1, ..., j - 1 in that
// order, each a rounded product then a rounded difference (no FMA contraction), then the
// division by its pivot. The bits are the left-looking form's (kernels/test/quant_test.cc).
constexpr int64_t kPanel = 64, kStrip = 8;

std::vector<double> inverse_cholesky_upper(std::vector<double> H, int64_t n) {
  // the lower triangle of A = J H J
  std::vector<double> A(n * n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) A[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)];
  std::vector<double> diag(n), panel;  // the pivots' original values; a panel's columns, transposed
  for (int64_t j = 0; j < n; j++) diag[j] = A[j * n + j];
  for (int64_t k0 = 0; k0 < n; k0 += kPanel) {
    const int64_t k1 = std::min(n, k0 + kPanel);
    // the panel's diagonal block, rows k0 .. k1 - 1 (the earlier panels' terms are subtracted)
    for (int64_t j = k0; j < k1; j++) {
      double d = A[j * n + j];
      for (int64_t k = k0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
      // a pivot lost to cancellation is a singular matrix in all but rounding
      if (!(d > 1e-10 * diag[j]))
        fail(SIEVE_E_INVALID_ARGUMENT,
             "the damped Hessian is not positive definite (pivot %lld is %g): raise damp or give more calibration data",
             (long long)(n - 1 - j), d);
      const double ljj = std::sqrt(d);
      A[j * n + j] = ljj;
      for (int64_t i = j + 1; i < k1; i++) {
        double s = A[i * n + j];
        for (int64_t k = k0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
        A[i * n + j] = s / ljj;
      }
    }
    // the panel's columns of every row below the block, each row on its own
#pragma omp parallel for schedule(static)
    for (int64_t i = k1; i < n; i++) {
      double* ai = A.data() + i * n;
      for (int64_t j = k0; j < k1; j++) {
        double s = ai[j];
        for (int64_t k = k0; k < j; k++) s -= ai[k] * A[j * n + k];
        ai[j] = s / A[j * n + j];
      }
    }
    if (k1 == n) break;
    // the trailing columns j >= k1 (rows i >= j) take the panel's k in order, kStrip columns at a time
    const int64_t P = k1 - k0, m = n - k1;
    panel.assign(P * m, 0.0);
    for (int64_t j = k1; j < n; j++)
      for (int64_t k = 0; k < P; k++) panel[k * m + (j - k1)] = A[j * n + k0 + k];
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = k1; i < n; i++) {
      double* ai = A.data() + i * n;
      int64_t j = k1;
      for (; j + kStrip <= i + 1; j += kStrip) {
        double acc[kStrip];
        for (int64_t s = 0; s < kStrip; s++) acc[s] = ai[j + s];
        for (int64_t k = 0; k < P; k++) {
          const double a = ai[k0 + k];
          const double* pk = panel.data() + k * m + (j - k1);
          for (int64_t s = 0; s < kStrip; s++) acc[s] -= a * pk[s];
        }
        for (int64_t s = 0; s < kStrip; s++) ai[j + s] = acc[s];
      }
      for (; j <= i; j++) {
        double x = ai[j];
        for (int64_t k = 0; k < P; k++) x -= ai[k0 + k] * panel[k * m + (j - k1)];
        ai[j] = x;
      }
    }
  }
  // R = J L J: R[i][j] = L[n-1-i][n-1-j], upper. Invert R by back substitution, column by column,
  // each column of U built in a contiguous vector (the sums run over k in the same order).
  auto R = [&](int64_t i, int64_t j) { return A[(n - 1 - i) * n + (n - 1 - j)]; };
  std::vector<double> U(n * n, 0.0);
#pragma omp parallel
  {
    std::vector<double> u(n);
#pragma omp for schedule(dynamic, 16)
    for (int64_t j = 0; j < n; j++) {
      // solve R x = e_j for the upper-triangular x (x[i] = 0 for i > j)
      u[j] = 1.0 / R(j, j);
      for (int64_t i = j - 1; i >= 0; i--) {
        const double* ri = A.data() + (n - 1 - i) * n + (n - 1);  // R(i, k) = ri[-k]
        double s = 0.0;
        for (int64_t k = i + 1; k <= j; k++) s += ri[-k] * u[k];
        u[i] = -s / R(i, i);
      }
      for (int64_t i = 0; i <= j; i++) U[i * n + j] = u[i];
    }
  }
  return U;
}

void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const double* hessian, const float* mask,
          int64_t rows, int64_t cols, const QuantGrid& grid, double damp, bool act_order) {
  const int64_t n = cols, G = cols / grid.group, g = grid.group;
  // H from its upper triangle; dead inputs become identity rows and zero weights
  std::vector<double> H(n * n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i; j < n; j++) H[i * n + j] = H[j * n + i] = hessian[i * n + j];
  std::vector<char> dead(n, 0);
  for (int64_t i = 0; i < n; i++)
    if (H[i * n + i] == 0.0) {
      dead[i] = 1;
      for (int64_t j = 0; j < n; j++) H[i * n + j] = H[j * n + i] = 0.0;
      H[i * n + i] = 1.0;
    }
  double mean = 0.0;
  for (int64_t i = 0; i < n; i++) mean += H[i * n + i];
  const double lambda = damp * mean / (double)n;
  for (int64_t i = 0; i < n; i++) H[i * n + i] += lambda;

  // the order columns are quantized in, and H in that order
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return H[a * n + a] > H[b * n + b]; });
  std::vector<double> Hp(n * n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) Hp[i * n + j] = H[perm[i] * n + perm[j]];
  const std::vector<double> U = inverse_cholesky_upper(std::move(Hp), n);

#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* wr = w + r * n;
    const float* mr = mask ? mask + r * n : nullptr;
    float* sc = scales + r * G;
    uint8_t* zp = zeros + r * G;
    uint8_t* cr = codes + r * n;
    auto kept = [&](int64_t c) { return !dead[c] && (!mr || mr[c] != 0.0f); };
    // the row in quantization order, dead and masked weights as 0
    std::vector<double> x(n);
    for (int64_t j = 0; j < n; j++) x[j] = kept(perm[j]) ? (double)wr[perm[j]] : 0.0;
    std::vector<float> buf(g), bmask(g);
    auto group_params = [&](int64_t grp, auto value) {
      for (int64_t i = 0; i < g; i++) {
        const int64_t c = grp * g + i;
        buf[i] = value(c);
        bmask[i] = kept(c) ? 1.0f : 0.0f;
      }
      quant_group_params(&sc[grp], &zp[grp], buf.data(), bmask.data(), g, grid);
    };
    // static groups under act_order: every group's parameters from the original weights
    if (act_order)
      for (int64_t grp = 0; grp < G; grp++) group_params(grp, [&](int64_t c) { return wr[c]; });
    for (int64_t j = 0; j < n; j++) {
      const int64_t c = perm[j];
      const int64_t grp = c / g;
      // in order, a group's parameters come from its current (error-updated) weights
      if (!act_order && c % g == 0) group_params(grp, [&](int64_t cc) { return (float)x[cc]; });
      if (!kept(c)) {
        cr[c] = zp[grp];
        continue;
      }
      const float wf = (float)x[j];
      const uint8_t code = quant_code(wf, sc[grp], zp[grp], grid);
      cr[c] = code;
      const double q = (double)(((float)code - (float)zp[grp]) * sc[grp]);  // as dequantize gives it
      const double err = (x[j] - q) / U[j * n + j];
      const double* urow = U.data() + j * n;
      for (int64_t k = j + 1; k < n; k++) x[k] -= err * urow[k];
    }
  }
}

}  // namespace sieve::cpu
