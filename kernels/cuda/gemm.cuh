// gemm.cuh — the dense GEMM of the CUDA backend, through cuBLASLt, in the CPU backend's
// convention (cpu/gemm.h): row-major, C (M, N) = alpha op(A) op(B) + beta C, where op(A) is
// (M, K) and op(B) is (K, N). A linear layer's out (N, OC) = inp (N, IC) W^T is
// gemm(false, true, N, OC, IC, 1, inp, IC, W, IC, 0, out, OC, stream).
//
// Promises:
//   - A and B are bf16; products accumulate in fp32 (CUBLAS_COMPUTE_32F); C is fp32 or bf16
//     (one overload each), read only when beta != 0. alpha and beta are host floats.
//   - The product is queued on `stream`; nothing here synchronises the device.
//   - The first call with a new (shape, transposes, leading dimensions, C's type, pointer
//     alignments) asks cuBLASLt's heuristic once and keeps its descriptors and choice; a
//     repeated call goes straight to cublasLtMatmul.
//   - One Blas serves one stream at a time: its 32 MiB workspace is shared by every call.
//   - Bad sizes or leading dimensions are refused with SIEVE_E_INVALID_ARGUMENT naming them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common.cuh"

namespace sieve::cuda {

class Blas {
 public:
  // 32 MiB is what cuBLAS asks for on Hopper to reach its fastest kernels.
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;

  Blas();
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // C (M, N) fp32, row-major with leading dimension ldc. A is (M, K), or (K, M) when
  // trans_a, with leading dimension lda; B is (K, N), or (N, K) when trans_b.
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
            int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc,
            cudaStream_t stream);
  // C (M, N) fp32 = alpha op(A) op(B) + R + bias: R (M, N) with leading dimension ldc (null:
  // none; it may be C), bias (N, null: none) added to every row by cuBLASLt's epilogue. A linear
  // layer's forward with its residual in one pass over C. The epilogue needs bias 16-byte aligned
  // (bias_fits says; SIEVE_E_INVALID_ARGUMENT otherwise).
  void gemm_add(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                int64_t lda, const __nv_bfloat16* B, int64_t ldb, const float* bias, const float* R, float* C,
                int64_t ldc, cudaStream_t stream);
  static bool bias_fits(const float* bias) { return reinterpret_cast<uintptr_t>(bias) % 16 == 0; }
  // The same as gemm with C (M, N) bf16 (rounded once, from the fp32 result).
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
            int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, __nv_bfloat16* C, int64_t ldc,
            cudaStream_t stream);

  // How many distinct problems have a cached plan (for the checks).
  size_t plans() const;

 private:
  struct State;
  void run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
           int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, const void* C_in, void* C,
           cudaDataType c_type, int64_t ldc, const float* bias, cudaStream_t stream);
  std::unique_ptr<State> st_;
};

}  // namespace sieve::cuda
