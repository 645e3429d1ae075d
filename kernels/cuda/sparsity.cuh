// sparsity.cuh — the 2:4 kernels of the CUDA backend (METHODS.md §1–§5): the magnitude and
// transposable masks, S-STE's fused soft threshold (+ scale, + bf16 copy, + mask), its
// dot products, the masked weight, SR-STE's masked decay, MVUE, and the counts. Each is the
// GPU twin of the cpu/sparsity.h function of the same name (masked_weight: cpu/transform.cc's
// MASK transform; masked_decay: cpu/grad_hook.cc's MASKED_DECAY hook).
//
// Promises:
//   - Pointers are device pointers; every call is enqueued on `stream` and never
//     synchronises. Results that are scalars are written to device memory (download them,
//     or keep them on the device for the next kernel).
//   - Sizes as the CPU requires them (K % 4 == 0, R % 4 == 0 for the transposable mask,
//     n % 4 == 0 for S-STE); a bad size throws sieve::Error (SIEVE_E_INVALID_ARGUMENT).
//     Pointers need no alignment: 16-byte aligned ones take the vectorised path.
//   - Same bits as the CPU: both masks, S-STE's fp32 output and the masked weight (their
//     bf16 copies are those outputs rounded to nearest even), the masked decay, MVUE (the
//     draws are core/rng.h's, the double arithmetic is the CPU's, operation for operation,
//     with no FMA contraction and no libm call), and the integer counts. NaN ranks as
//     magnitude -1 in both masks.
//   - sste_dots sums in double in an order fixed by n alone (chunks of 16384 elements,
//     a fixed tree inside each, chunks added by a fixed tree), so it is deterministic run to
//     run; it differs from the CPU's order, by rounding only (~1e-16 relative per term;
//     every term is >= 0, so the sums are well conditioned).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace sieve::cuda {

// ---- masks (1 = kept, 0 = pruned), as float like the CPU's mask buffers

// Groups of 4 consecutive along K: keep element i iff it beats at least 2 of the other 3
// (a beats b: |a| > |b|, or |a| == |b| and a's index is higher).
void mask24_magnitude(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K,
                      cudaStream_t stream);
// Per 4x4 block, the best of the 90 transposable patterns (score ((p0 + p1) + p2) + p3 in
// float, ties to the lowest index in sieve.h's order). One thread per block.
void mask24_transposable(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K,
                         cudaStream_t stream);
// Pattern k (0..89) of the table compiled into mask24_transposable: bit 4 r + c = row r,
// column c kept (the layout of cpu::transposable_patterns(), which a check compares).
uint16_t transposable_pattern_bits(int k);

// ---- S-STE (METHODS 3.2-3.3)

// One read of w, per group of 4: out = scale S(w) in fp32 and/or bf16, and the magnitude
// mask of w; any of the three outputs may be null. out_bf16 = round-to-nearest-even(out).
// A group holding a NaN gives NaN in all 4 outputs (its mask follows the NaN rule above).
void sste_threshold(float* out /* (n) or null */, __nv_bfloat16* out_bf16 /* (n) or null */,
                    float* mask /* (n) or null */, const float* w /* (n) */, float scale, int64_t n,
                    cudaStream_t stream);
// Doubles of scratch sste_dots needs for n elements.
int64_t sste_dots_scratch(int64_t n);
// dots[0] = <w, S(w)>, dots[1] = <S(w), S(w)> (S(w) as sste_threshold gives it with scale 1).
void sste_dots(double* dots /* (2) */, const float* w /* (n) */, int64_t n, double* scratch /* (sste_dots_scratch(n)) */,
               cudaStream_t stream);

// ---- hard masks (SIEVE_TRANSFORM_MASK: SR-STE, AST)

// W~ = mask (.) w in fp32 and/or bf16 (either may be null); out_bf16 = round-to-nearest-even(out).
void masked_weight(float* out /* (n) or null */, __nv_bfloat16* out_bf16 /* (n) or null */, const float* w /* (n) */,
                   const float* mask /* (n) */, int64_t n, cudaStream_t stream);

// ---- CAST's weight scales (SIEVE_TRANSFORM_SCALE, METHODS 5.4): A (R, SG), K % SG == 0

// W~[r, c] = A[r, c / (K / SG)] w[r, c] in fp32 and/or bf16 (either may be null), bit for bit
// cpu/sparsity.h's weight_scale_forward (and its bf16 rounding).
void weight_scale(float* out /* (R, K) or null */, __nv_bfloat16* out_bf16 /* (R, K) or null */,
                  const float* w /* (R, K) */, const float* scale /* (R, SG) */, int64_t R, int64_t K, int64_t SG,
                  cudaStream_t stream);
// dw += A (.) dwt, bit for bit the CPU's; dscale[r, s] += the sum over row r's segment s of
// dwt (.) w, in double, one warp per segment in a fixed order (deterministic; within double
// rounding of the CPU's sequential sum before the one rounding to float).
void weight_scale_backward(float* dw /* (R, K) += */, float* dscale /* (R, SG) += */, const float* dwt /* (R, K) */,
                           const float* w /* (R, K) */, const float* scale /* (R, SG) */, int64_t R, int64_t K,
                           int64_t SG, cudaStream_t stream);

// ---- SR-STE (METHODS 2.2): the masked decay on the gradient, after clipping, before the rule

// grad += lambda (1 - mask) (.) w where mask != 1; entries with mask == 1 keep their bits (-0 too).
void masked_decay(float* grad /* (n) */, const float* w /* (n) */, const float* mask /* (n) */, float lambda,
                  int64_t n, cudaStream_t stream);

// ---- MVUE along rows (METHODS 2.7): out and g may be strided (ldo, ldg >= D)

// Per column d and group q of 4 consecutive rows: the draws of sieve.h's sieve_mvue24.
// A trailing partial group and a group holding a non-finite value are copied unchanged.
void mvue24(float* out /* (N, ldo) */, const float* g /* (N, ldg) */, int64_t N, int64_t D, int64_t ldo, int64_t ldg,
            uint64_t seed, cudaStream_t stream);
// The same draws with out rounded to bf16 (nearest even): bit for bit to_bf16 of the fp32 form.
void mvue24(__nv_bfloat16* out /* (N, ldo) */, const float* g /* (N, ldg) */, int64_t N, int64_t D, int64_t ldo,
            int64_t ldg, uint64_t seed, cudaStream_t stream);

// ---- SLoRB (METHODS 4.5)

// s[d, i] = (1/k) sum_{j = ik}^{(i+1)k - 1} w[d, j] (1 - mask[d, j]) in double, rounded to float
// (mask null: all kept, s = 0); K % k == 0. Bit for bit cpu::slorb_init_mean.
void slorb_init_mean(float* s /* (R, K / k) */, const float* w /* (R, K) */, const float* mask /* (R, K) or null */,
                     int64_t R, int64_t K, int64_t k, cudaStream_t stream);

// ---- counts (exact integers; the output is overwritten, not accumulated)

// flips[0] = the number of i with before[i] != after[i]
void mask_flips(int64_t* flips /* (1) */, const float* before /* (n) */, const float* after /* (n) */, int64_t n,
                cudaStream_t stream);
// groups[0] = groups of 4 consecutive along K with more than 2 nonzeros
void count24_along_rows(int64_t* groups /* (1) */, const float* w /* (R, K) */, int64_t R, int64_t K,
                        cudaStream_t stream);
// groups[0] = groups of 4 consecutive rows (per column) with more than 2 nonzeros; R % 4 == 0
void count24_along_cols(int64_t* groups /* (1) */, const float* w /* (R, K) */, int64_t R, int64_t K,
                        cudaStream_t stream);

}  // namespace sieve::cuda
