// quant.cuh — weight-only quantization on the GPU: the twins of cpu/quant.h on the grid of
// core/quant.h (round-to-nearest and dequantization), and the host ops the CUDA Backend runs
// for sieve_quantize_rtn / sieve_dequantize (host arrays: copied in, run, copied out).
//
// Promises:
//   - The CPU's bits: group parameters, codes and dequantized values are bit for bit those of
//     core/quant.cc's quant_group_params / quant_code and cpu/quant.cc's dequantize. Min, max and
//     |w| are exact in any order (and no -0 ever wins over the +0 they start from); every other
//     float operation is the CPU's, in its order, rounded on its own (__fdiv_rn, __fsub_rn,
//     __fadd_rn, __fmul_rn: no FMA contraction), rounding half to even with rintf; subnormals
//     are kept (the build does not flush to zero).
//   - The launchers take device pointers, enqueue on `stream` and never synchronise; pointers
//     need no alignment.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/quant.h"

namespace sieve::cuda {

// One warp per group of `grid.group` consecutive columns of a row.
void quantize_rtn(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
                  const float* w /* (rows, cols) */, const float* mask /* (rows, cols) or null */, int64_t rows,
                  int64_t cols, const QuantGrid& grid, cudaStream_t stream);

// out = (code - zero) scale, one thread per weight.
void dequantize(float* out /* (rows, cols) */, const uint8_t* codes /* (rows, cols) */, const float* scales /* (rows, G) */,
                const uint8_t* zeros /* (rows, G) */, int64_t rows, int64_t cols, int64_t group, cudaStream_t stream);

// The Backend members (core/backend.h): host arrays in and out, the work on the current device.
void quantize_rtn_host(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                       int64_t cols, const QuantGrid& grid);
void dequantize_host(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows,
                     int64_t cols, int64_t group);

}  // namespace sieve::cuda
