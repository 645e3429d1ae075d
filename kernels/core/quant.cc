// quant.cc — the device-independent half of weight-only quantization (quant.h): the grid's
// group parameters and codes, GPTQ's factor and its plan.
#include "quant.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "error.h"

namespace sieve {

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

GptqPlan gptq_plan(const double* hessian, int64_t n, double damp, bool act_order) {
  // H from its upper triangle; dead inputs become identity rows (their weights count as pruned)
  std::vector<double> H(n * n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = i; j < n; j++) H[i * n + j] = H[j * n + i] = hessian[i * n + j];
  GptqPlan plan{n, std::vector<int64_t>(n), std::vector<char>(n, 0), {}, act_order};
  for (int64_t i = 0; i < n; i++)
    if (H[i * n + i] == 0.0) {
      plan.dead[i] = 1;
      for (int64_t j = 0; j < n; j++) H[i * n + j] = H[j * n + i] = 0.0;
      H[i * n + i] = 1.0;
    }
  double mean = 0.0;
  for (int64_t i = 0; i < n; i++) mean += H[i * n + i];
  const double lambda = damp * mean / (double)n;
  for (int64_t i = 0; i < n; i++) H[i * n + i] += lambda;

  // the order columns are quantized in, and H in that order
  std::iota(plan.perm.begin(), plan.perm.end(), 0);
  if (act_order)
    std::stable_sort(plan.perm.begin(), plan.perm.end(),
                     [&](int64_t a, int64_t b) { return H[a * n + a] > H[b * n + b]; });
  std::vector<double> Hp(n * n);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) Hp[i * n + j] = H[plan.perm[i] * n + plan.perm[j]];
  plan.U = inverse_cholesky_upper(std::move(Hp), n);
  return plan;
}

void gptq_static_groups(float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
                        int64_t rows, const QuantGrid& grid) {
  const int64_t n = plan.n, g = grid.group, G = n / g;
#pragma omp parallel
  {
    std::vector<float> bmask(g);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const float* mr = mask ? mask + r * n : nullptr;
      for (int64_t grp = 0; grp < G; grp++) {
        for (int64_t i = 0; i < g; i++) bmask[i] = gptq_kept(plan, mr, grp * g + i) ? 1.0f : 0.0f;
        quant_group_params(&scales[r * G + grp], &zeros[r * G + grp], w + r * n + grp * g, bmask.data(), g, grid);
      }
    }
  }
}

}  // namespace sieve
