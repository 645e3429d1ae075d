// compress24.cuh — writes a 2:4 bf16 matrix in the compressed form cuSPARSELt's sm_90 products
// read, without cuSPARSELt's compression kernel (about 1.4 ms for a 4096 x 11008 weight on an
// H100 where reading it takes about 30 µs: it cost a sparse training step more than its 2:4
// products saved).
//
// The form was found by compressing probe matrices with cusparseLtSpMMACompress2 (cuSPARSELt
// 0.8.0 on an H100; docs/cuda.md "Compressed 2:4 form"). For op(A) = (M, K), 2:4 along K:
//   - values: the two kept elements of every group of 4, in order, laid out like the stored matrix
//     with K halved: (M, K/2) row-major for the forward product's W (OC, IC); (K/2, M) row-major
//     for the input gradient's op(A) = W^T, whose groups run down W's columns.
//   - metadata, right after them: a nibble per group, idx0 | idx1 << 2 (idx0 < idx1, the kept
//     positions), in tiles of 64 rows x 8 groups (32 of K), tiles ordered K-tile fastest, and
//     within a tile nibble (m%64, g%8) at bit 0: m bit 3, bit 1: g bit 2, bits 2-3: g bits 0-1,
//     bits 4-6: m bits 0-2, bits 7-8: m bits 4-5 (two nibbles a byte, the even one low).
// NVIDIA documents none of this and may change it, so SparseLinear uses it only where it has just
// checked, for that shape and op, that this writer and cuSPARSELt's produce the same bytes.
//
// Promises: M a multiple of 64 and K of 32 (compress24_fits); out holds M*K/2 bf16 values and
// M*K/8 bytes of metadata (M*K*9/8 bytes); w is bf16 (OC, IC) row-major, 16-byte aligned. A group
// with fewer than two nonzeros keeps its nonzero and then its lowest zero positions; one with
// more than two (not 2:4: the masking kernels never write one) keeps its first two nonzeros.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace sieve::cuda {

// Whether compress24 can write op(A) = (M, K): the tile grid divides it.
bool compress24_fits(int64_t M, int64_t K);
// Compresses W (OC, IC) for the forward product (op(A) = W, M = OC, K = IC) or, when
// transposed, for the input gradient's (op(A) = W^T, M = IC, K = OC), into out.
void compress24(const __nv_bfloat16* w, int64_t OC, int64_t IC, bool transposed, void* out, cudaStream_t stream);
// Fills W (OC, IC) with random nonzero values, two of every group of 4 along the op's K (IC, or OC
// when transposed) kept at random positions: the probe both compressions are compared on.
void fill_probe24(__nv_bfloat16* w, int64_t OC, int64_t IC, bool transposed, uint64_t seed, cudaStream_t stream);
// Whether the two buffers of `bytes` (a multiple of 4) are equal. Synchronises the stream.
bool same_bytes(const void* a, const void* b, int64_t bytes, cudaStream_t stream);

}  // namespace sieve::cuda
