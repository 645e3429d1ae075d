// quant.h — weight-only quantization as every backend computes it (sieve.h, "weight-only
// quantization"): the grid, one group's parameters and one weight's code — the spec a device
// backend reproduces bit for bit — and GPTQ's plan, the part of GPTQ that does not depend on
// the device (dead columns, damping, the factor U, the column order, act_order's static groups).
// The host builds the plan (core/quant_api.cc); a backend's Backend::gptq then runs the rows.
//
// Promises: sizes arrive validated (cols % group == 0, bits in {2, 3, 4, 8}, finite weights).
// Nothing here depends on the thread count. Rounding is half to even (nearbyint in the default
// rounding mode); the build has no FMA contraction, so each operation is rounded on its own.
#pragma once

#include <cstdint>
#include <vector>

namespace sieve {

struct QuantGrid {
  int32_t bits;
  int64_t group;
  bool symmetric;
  int32_t maxq() const { return (1 << bits) - 1; }
};

// One group's scale and zero point from its kept weights (mask null or 1).
void quant_group_params(float* scale, uint8_t* zero, const float* w, const float* mask, int64_t n,
                        const QuantGrid& grid);
// The code of one weight: clamp(round(w / scale) + zero, 0, maxq).
uint8_t quant_code(float w, float scale, uint8_t zero, const QuantGrid& grid);

// U (n, n) upper triangular with H^-1 = U^T U, for H (n, n) symmetric positive definite: GPTQ's
// factor (quant.cc says how). Throws SIEVE_E_INVALID_ARGUMENT when a pivot falls below 1e-10 of
// its diagonal entry.
std::vector<double> inverse_cholesky_upper(std::vector<double> H, int64_t n);

// What GPTQ's rows share (sieve.h, sieve_gptq). Step j of a row quantizes column perm[j]; its
// error (x_j - q_j) / U[j][j] times U's row j is subtracted from the later steps, in double.
struct GptqPlan {
  int64_t n;                 // cols
  std::vector<int64_t> perm; // (n) the column quantized at step j
  std::vector<char> dead;    // (n) by column: H_ii = 0, so the column counts as pruned in every row
  std::vector<double> U;     // (n, n) row-major, in step order
  // act_order: every group's parameters were set from the original weights before the rows run
  // (gptq_static_groups); otherwise a group's come from its error-updated weights when the step
  // reaches its first column.
  bool static_groups;
};

// hessian (n, n), upper triangle read; throws SIEVE_E_INVALID_ARGUMENT when the damped Hessian is
// not positive definite.
GptqPlan gptq_plan(const double* hessian, int64_t n, double damp, bool act_order);

// Whether row r keeps column c: alive and not masked.
inline bool gptq_kept(const GptqPlan& plan, const float* mask_row /* (n) or null */, int64_t c) {
  return !plan.dead[c] && (!mask_row || mask_row[c] != 0.0f);
}

// act_order's static groups: every group's scale and zero point from the row's original kept weights.
void gptq_static_groups(float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */, const float* w /* (rows, n) */,
                        const float* mask /* (rows, n) or null */, const GptqPlan& plan, int64_t rows,
                        const QuantGrid& grid);

}  // namespace sieve
