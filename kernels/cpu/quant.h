// quant.h — weight-only quantization on the CPU backend (METHODS.md §6): round-to-nearest,
// GPTQ's rows and dequantization on the grid of core/quant.h, run by the CPU Backend's
// quantize_rtn / dequantize / gptq (cpu/backend.cc) for the op-level functions (core/quant_api.cc).
//
// Promises: sizes arrive validated (cols % group == 0, bits in {2, 3, 4, 8}, finite weights).
// Rows are independent and each row's arithmetic is sequential, so the bits never depend on
// the thread count: they are the reference every other backend matches bit for bit.
#pragma once

#include <cstdint>

#include "core/quant.h"

namespace sieve::cpu {

void quantize_rtn(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
                  const float* w /* (rows, cols) */, const float* mask /* (rows, cols) or null */, int64_t rows,
                  int64_t cols, const QuantGrid& grid);

void dequantize(float* out /* (rows, cols) */, const uint8_t* codes, const float* scales, const uint8_t* zeros,
                int64_t rows, int64_t cols, int64_t group);

// GPTQ's rows under `plan` (core/quant.h); with plan.static_groups, scales and zeros arrive set.
void gptq(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
          const float* w /* (rows, cols) */, const float* mask /* (rows, cols) or null */, const GptqPlan& plan,
          int64_t rows, const QuantGrid& grid);

}  // namespace sieve::cpu
