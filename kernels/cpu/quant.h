// quant.h — weight-only quantization of the CPU backend (METHODS.md §6): round-to-nearest,
// GPTQ and dequantization on the grid sieve.h defines ("weight-only quantization"). The
// op-level functions (cpu/api.cc) run these; the quantize stage calls them through the addon.
//
// Promises: sizes arrive validated (cols % group == 0, bits in {2, 3, 4, 8}, finite weights).
// Rows are independent and each row's arithmetic is sequential, so the bits never depend on
// the thread count. Rounding is half to even (nearbyint in the default rounding mode).
#pragma once

#include <cstdint>
#include <vector>

namespace sieve::cpu {

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

void quantize_rtn(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
                  const float* w /* (rows, cols) */, const float* mask /* (rows, cols) or null */, int64_t rows,
                  int64_t cols, const QuantGrid& grid);

void dequantize(float* out /* (rows, cols) */, const uint8_t* codes, const float* scales, const uint8_t* zeros,
                int64_t rows, int64_t cols, int64_t group);

// U (n, n) upper triangular with H^-1 = U^T U, for H (n, n) symmetric positive definite: GPTQ's
// factor (quant.cc says how). Throws SIEVE_E_INVALID_ARGUMENT when a pivot falls below 1e-10 of
// its diagonal entry.
std::vector<double> inverse_cholesky_upper(std::vector<double> H, int64_t n);

// GPTQ (sieve.h, sieve_gptq); hessian (cols, cols), upper triangle read. Throws
// SIEVE_E_INVALID_ARGUMENT when the damped Hessian is not positive definite.
void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const double* hessian, const float* mask,
          int64_t rows, int64_t cols, const QuantGrid& grid, double damp, bool act_order);

}  // namespace sieve::cpu
