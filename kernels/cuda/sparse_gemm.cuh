// sparse_gemm.cuh — the 2:4-sparse linear layer of the CUDA backend, through cuSPARSELt:
//
//   forward         out (N, OC)  = inp (N, IC)  W^T   (+ out  when accumulate)
//   backward_input  dinp (N, IC) = dout (N, OC) W     (+ dinp when accumulate)
//
// and, in SparseWeightGrad, the third product of fully 2:4 training (METHODS 2.1):
//
//   weight gradient dW (OC, IC)  = dout^T inp, with dout (N, OC) 2:4 along N (MVUE's estimate of
//                                  the activation gradient, METHODS 2.7)
//
// W (OC, IC) is bf16, row-major, already pruned 2:4 along IC (groups of 4 consecutive inputs of
// one output row, as cpu/sparsity.h prunes); nothing here prunes. cuSPARSELt multiplies by a 2:4
// operand only when its groups run along the product's reduction dimension: IC in the forward
// product, but OC in the input gradient. So backward_input exists only for a W that is 2:4 along
// OC as well (a transposable mask, cpu::mask24_transposable), and it multiplies by a second
// compressed copy of W, made for the transposed op. With a mask that is 2:4 along IC only, there
// is no sparse input-gradient product: use the dense GEMM (gemm.cuh) for it.
//
// Promises:
//   - bf16 operands, fp32 accumulation (CUSPARSE_COMPUTE_32F), bf16 results: cuSPARSELt writes
//     bf16 only from bf16 operands.
//   - W is compressed only when (w, w_version) differs from the pair last compressed: the caller
//     bumps w_version whenever it changes the weight or its mask. New values written under the
//     same version and pointer are not seen (the checks use this to prove the cache).
//   - Compression::own writes the compressed copies with compress24 (compress24.cuh), a kernel at
//     the memory's rate where cuSPARSELt's compression is not, for each product whose shape it
//     fits and for which it produced cuSPARSELt's bytes exactly on a random 2:4 probe of that
//     shape and op (checked once per SparseLt, shape and op, when a layer is made; the check
//     synchronises the device). Any other product, and every product under Compression::cusparselt, is compressed
//     by cuSPARSELt (cusparseLtSpMMACompress).
//   - Descriptors and plans are built once per (product, N) and kept. With SparseAlgo::search,
//     cusparseLtMatmulSearch picks the kernel once per (product, N), into a scratch output so an
//     accumulating call is not disturbed; that first call synchronises the stream.
//   - N, OC and IC must be positive multiples of 16 and every pointer 16-byte aligned
//     (cuSPARSELt's limits for 16-bit 2:4 operands); anything else is refused with
//     SIEVE_E_INVALID_ARGUMENT naming the shape.
//   - Work is queued on the given stream. The products of one SparseLt's layers share its matmul
//     workspace, so they run on one stream; a compression may run on another (prepare on a side
//     stream, ahead of the products): each product waits for the compression it reads, and a
//     compression for the products that read the copies it replaces (events; no host waits). A
//     layer must not outlive its SparseLt.
//   - Needs libcusparseLt 0.6 or later at run time (the bf16 compute type CUSPARSE_COMPUTE_32F).
#pragma once

#include <cstdint>
#include <memory>

#include "common.cuh"

namespace sieve::cuda {

// One cuSPARSELt handle (tied to the current device) and the matmul workspace its layers share.
class SparseLt {
 public:
  SparseLt();
  ~SparseLt();
  SparseLt(const SparseLt&) = delete;
  SparseLt& operator=(const SparseLt&) = delete;

  // The loaded library's cusparseLtGetVersion: release 0.x.y reads x * 100 + y.
  int version() const;

 private:
  friend class SparseLinear;
  friend class SparseWeightGrad;
  struct State;
  std::unique_ptr<State> st_;
};

enum class SparseAlgo {
  search,      // cusparseLtMatmulSearch, once per (product, N): the fastest kernel for the shape
  default_id,  // cuSPARSELt's default kernel (config 0), what torch's to_sparse_semi_structured runs
};

enum class Compression {
  own,         // compress24 where it is verified to write cuSPARSELt's bytes, else cuSPARSELt
  cusparselt,  // cusparseLtSpMMACompress always
};

// SIEVE_CUDA_COMPRESS: unset or "own" -> own, "cusparselt" -> cusparselt; anything else is
// refused with SIEVE_E_INVALID_ARGUMENT naming the variable.
Compression compression_from_env();

class SparseLinear {
 public:
  // W (OC, IC). transposable: W is 2:4 along OC too, and backward_input will be called.
  SparseLinear(SparseLt& lt, int64_t OC, int64_t IC, bool transposable = false,
               SparseAlgo algo = SparseAlgo::search, Compression compression = Compression::own);
  ~SparseLinear();
  SparseLinear(const SparseLinear&) = delete;
  SparseLinear& operator=(const SparseLinear&) = delete;

  // Compresses w (OC, IC) unless (w, w_version) is the pair last compressed; true when it did.
  // forward and backward_input call it first; call it alone, on a side stream, to compress ahead
  // of the products (w must be written before: order that stream after the writer), or to time it.
  bool prepare(const __nv_bfloat16* w, uint64_t w_version, cudaStream_t stream);

  // out (N, OC) = inp (N, IC) W^T, or out += ... when accumulate.
  void forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* w, uint64_t w_version,
               int64_t N, bool accumulate, cudaStream_t stream);
  // dinp (N, IC) = dout (N, OC) W, or dinp += ... when accumulate. Needs transposable.
  void backward_input(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const __nv_bfloat16* w, uint64_t w_version,
                      int64_t N, bool accumulate, cudaStream_t stream);

  // Whether w (OC, IC) has at most 2 nonzeros in every group of 4 along IC (along OC when
  // along_oc), by cusparseLtSpMMAPruneCheck2. Synchronises the stream.
  bool pattern_ok(const __nv_bfloat16* w, bool along_oc, cudaStream_t stream) const;

  // How many times prepare() compressed (for the checks).
  int64_t compressions() const;
  // Whether the forward (or input-gradient) copy is written by compress24 rather than cuSPARSELt.
  bool own_compression(bool backward) const;
  // The kernel (cuSPARSELt config id) the plan of (product, N) runs; -1 before its first call.
  int algorithm(int64_t N, bool backward) const;

  int64_t OC() const;
  int64_t IC() const;
  bool transposable() const;

 private:
  struct State;
  std::unique_ptr<State> st_;
};

// The weight-gradient product dW (OC, IC) = dout^T inp of one layer shape. Its sparse operand is
// the activation gradient dout (N, OC), whose groups of 4 consecutive rows (tokens) of every
// column hold at most 2 nonzeros (MVUE's output), compressed on every call since it changes every
// micro-step: by compress24 where it is verified for (OC, N), as SparseLinear's copies are, else
// by cuSPARSELt. Plans are kept per N (N is a dimension of the sparse operand). The compressed
// operand and its scratch are the SparseLt's, shared by all its layers (one stream, as above).
// Same precision, limits and stream rules as SparseLinear.
class SparseWeightGrad {
 public:
  SparseWeightGrad(SparseLt& lt, int64_t OC, int64_t IC, SparseAlgo algo = SparseAlgo::search,
                   Compression compression = Compression::own);
  ~SparseWeightGrad();
  SparseWeightGrad(const SparseWeightGrad&) = delete;
  SparseWeightGrad& operator=(const SparseWeightGrad&) = delete;

  // dw (OC, IC) = dout (N, OC)^T inp (N, IC), overwritten. dout must be 2:4 along N; nothing here
  // checks it (compress24 keeps a group's first two nonzeros, cuSPARSELt's compression says nothing).
  void multiply(__nv_bfloat16* dw, const __nv_bfloat16* dout, const __nv_bfloat16* inp, int64_t N,
                cudaStream_t stream);

  // Whether the operand of N rows is compressed by compress24 (false before its first call).
  bool own_compression(int64_t N) const;
  // The kernel (cuSPARSELt config id) the plan of N runs; -1 before its first call.
  int algorithm(int64_t N) const;

 private:
  struct State;
  std::unique_ptr<State> st_;
};

}  // namespace sieve::cuda
