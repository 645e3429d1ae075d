// sparsity.h — the 2:4 kernels of the CPU backend (METHODS.md §1–§5): masks, S-STE's soft
// threshold and scale, MVUE, counts, CAST's weight scaling and SLoRB's mean initialisation.
// The op-level functions of sieve.h (cpu/api.cc) and the model's members (sparse_model.cc)
// both run these, so what the tests check op by op is what the model does.
//
// Promises: sizes arrive validated (K % 4 == 0 and, for the transposable mask, R % 4 == 0;
// K % SG == 0; K % k == 0). Every result depends only on the inputs, never on the thread
// count: elementwise work is split over independent groups, sums are taken in chunks fixed
// by the sizes and combined in order, and MVUE's random numbers are counter-based
// (core/rng.h). NaN ranks as magnitude -1 in both masks (below every number).
#pragma once

#include <cstdint>

namespace sieve::cpu {

// ---- masks (1 = kept, 0 = pruned)

// Groups of 4 consecutive along K: keep element i iff it beats at least 2 of the other 3
// (a beats b: |a| > |b|, or |a| == |b| and a's index is higher).
void mask24_magnitude(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K);
// Per 4x4 block, the best of the 90 transposable patterns (sieve.h gives the order and ties).
void mask24_transposable(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K);
// The 90 patterns in their fixed order: 16 bits, bit 4 r + c = row r, column c kept.
const uint16_t* transposable_patterns();

// ---- S-STE

// out = S(w) on groups of 4 consecutive elements (n % 4 == 0); scale multiplies the result.
void sste_threshold(float* out /* (n) */, const float* w /* (n) */, float scale, int64_t n);
// <w, S(w)> and <S(w), S(w)> in double (S(w) as the float sste_threshold gives), fixed order.
void sste_dots(double* ws, double* ss, const float* w /* (n) */, int64_t n);

// ---- MVUE along rows: out and g may be strided (leading dimensions ldo, ldg >= D)

void mvue24(float* out /* (N, ldo) */, const float* g /* (N, ldg) */, int64_t N, int64_t D, int64_t ldo, int64_t ldg,
            uint64_t seed);
// The inclusion probabilities p_i of MVUE24_approx for one group (a_i = |x_i| + 2^-23; core/mvue.h).
void mvue24_probabilities(float p[4], const float x[4]);

// ---- counts and sums

int64_t mask_flips(const float* before /* (n) */, const float* after /* (n) */, int64_t n);
// groups of 4 consecutive along K with more than 2 nonzeros
int64_t count24_along_rows(const float* w /* (R, K) */, int64_t R, int64_t K);
// groups of 4 consecutive rows (per column) with more than 2 nonzeros; R % 4 == 0
int64_t count24_along_cols(const float* w /* (R, K) */, int64_t R, int64_t K);
// sum |w| where mask == 0, and sum |w|, in double, fixed order; mask null = all ones
void masked_abs_sums(double* pruned, double* total, const float* w /* (n) */, const float* mask /* (n) or null */,
                     int64_t n);

// ---- CAST's weight scaling (SIEVE_TRANSFORM_SCALE)

void weight_scale_forward(float* wt /* (R, K) */, const float* w /* (R, K) */, const float* scale /* (R, SG) */,
                          int64_t R, int64_t K, int64_t SG);
// dw += scale (.) dwt; dscale[r, s] += sum over the segment of dwt w (summed in double)
void weight_scale_backward(float* dw /* (R, K) += */, float* dscale /* (R, SG) += */, const float* dwt /* (R, K) */,
                           const float* w /* (R, K) */, const float* scale /* (R, SG) */, int64_t R, int64_t K,
                           int64_t SG);

// ---- SLoRB

// s[d, i] = (1/k) sum over block i of w[d, j] (1 - mask[d, j]), in double; mask null = all ones
void slorb_init_mean(float* s /* (R, K / k) */, const float* w /* (R, K) */, const float* mask /* (R, K) or null */,
                     int64_t R, int64_t K, int64_t k);

}  // namespace sieve::cpu
