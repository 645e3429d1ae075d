// quant.cuh — weight-only quantization on the GPU: the twins of cpu/quant.h on the grid of
// core/quant.h (round-to-nearest, dequantization, GPTQ's rows under the host's plan), and the
// host ops the CUDA Backend runs for sieve_quantize_rtn / sieve_dequantize / sieve_gptq (host
// arrays: copied in, run, copied out).
//
// Promises:
//   - The CPU's bits: group parameters, codes and dequantized values are bit for bit those of
//     core/quant.cc's quant_group_params / quant_code and cpu/quant.cc's dequantize and gptq.
//     Min, max and |w| are exact in any order (and no -0 ever wins over the +0 they start from);
//     every other float or double operation is the CPU's, in its order, rounded on its own
//     (__fdiv_rn, __fsub_rn, __fadd_rn, __fmul_rn, __ddiv_rn, __dsub_rn, __dmul_rn: no FMA
//     contraction), rounding half to even with rintf; subnormals are kept (the build does not
//     flush to zero).
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

// GPTQ's rows under the host-built plan (core/quant.h) with its U (n, n), perm (n) and dead (n)
// on the device: a block runs up to 8 rows at once, each row's working weights x (in step order,
// double) in shared memory, or in `scratch` when they do not fit there. Step j quantizes column
// perm[j] of every row of the block, then subtracts err * U[j][k] from each later x[k] (U's row
// read once for all the block's rows), each a rounded product then a rounded difference in
// double (__dmul_rn, __dsub_rn: the CPU's order, no FMA), so the codes, scales and zero points
// are the CPU's bits. With static_groups, scales and zeros arrive set and are only read.
struct GptqDevicePlan {
  const double* U;       // (n, n) row-major, in step order
  const int64_t* perm;   // (n) the column quantized at step j
  const uint8_t* dead;   // (n) by column
  int64_t n;
  bool static_groups;
};

// Bytes of shared memory a block may use for x (the device's opt-in limit, less the kernel's own):
// gptq's shared_limit, or less (0 forces the global scratch).
int64_t gptq_shared_limit();
// Doubles of scratch gptq needs: 0 when a row's x fits in shared_limit bytes, else rows * n.
int64_t gptq_scratch(int64_t rows, int64_t n, int64_t shared_limit);
void gptq(uint8_t* codes /* (rows, n) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
          const float* w /* (rows, n) */, const float* mask /* (rows, n) or null */, const GptqDevicePlan& plan,
          int64_t rows, const QuantGrid& grid, double* scratch /* (gptq_scratch(rows, n, shared_limit)) */,
          int64_t shared_limit, cudaStream_t stream);

// The Backend members (core/backend.h): host arrays in and out, the work on the current device.
void quantize_rtn_host(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                       int64_t cols, const QuantGrid& grid);
void dequantize_host(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows,
                     int64_t cols, int64_t group);
void gptq_host(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
               int64_t rows, const QuantGrid& grid);

}  // namespace sieve::cuda
