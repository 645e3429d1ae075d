// gemm.cu — Blas (gemm.cuh): row-major products on column-major cuBLASLt.
//
// The transpose trick: a row-major (R, C) matrix is, byte for byte, a column-major (C, R) one.
// So the row-major C = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T: cuBLASLt's "A" is
// our B's memory (m = N), its "B" is our A's memory (n = M), and each keeps its own transpose.
#include "gemm.cuh"

#include <algorithm>
#include <map>
#include <tuple>

#include "device_buffer.cuh"

namespace sieve::cuda {

namespace {

// Everything cuBLASLt's choice depends on. The pointers' alignments belong here: the heuristic
// is told which alignment it may assume, and a kernel picked for 256-byte-aligned operands is
// not valid for an operand at an odd offset.
struct Key {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  int c_type;
  uint32_t align_a, align_b, align_c;
  bool bias;  // the bias epilogue (its pointer is set on the descriptor per call)
  auto tie() const { return std::tie(ta, tb, M, N, K, lda, ldb, ldc, c_type, align_a, align_b, align_c, bias); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

// The largest power of two, up to 256, that divides the address.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = (uintptr_t)p;
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// One problem's descriptors and the algorithm the heuristic chose for it. The heuristic query
// costs tens of microseconds of host time, as much as a small GEMM itself: asking once per
// problem instead of once per call keeps the per-step cost at one cublasLtMatmul.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A, B and C (= D)
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

}  // namespace

struct Blas::State {
  cublasLtHandle_t handle = nullptr;
  DeviceBuffer<char> workspace;
  std::map<Key, std::unique_ptr<Plan>> plans;
};

Blas::Blas() : st_(new State) {
  SIEVE_CUBLAS(cublasLtCreate(&st_->handle));
  st_->workspace = DeviceBuffer<char>((int64_t)kWorkspaceBytes);
}

Blas::~Blas() {
  st_->plans.clear();  // descriptors before the handle
  if (st_->handle) cublasLtDestroy(st_->handle);
}

size_t Blas::plans() const { return st_->plans.size(); }

void Blas::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc,
                cudaStream_t stream) {
  run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, C, CUDA_R_32F, ldc, nullptr, stream);
}

void Blas::gemm_add(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                    int64_t lda, const __nv_bfloat16* B, int64_t ldb, const float* bias, const float* R, float* C,
                    int64_t ldc, cudaStream_t stream) {
  SIEVE_CHECK(!bias || bias_fits(bias), "gemm_add: the bias at %p is not 16-byte aligned", (const void*)bias);
  run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, R ? 1.0f : 0.0f, R ? R : C, C, CUDA_R_32F, ldc, bias,
      stream);
}

void Blas::gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, __nv_bfloat16* C, int64_t ldc,
                cudaStream_t stream) {
  run(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, C, CUDA_R_16BF, ldc, nullptr, stream);
}

void Blas::run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
               int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, const void* C_in, void* C,
               cudaDataType c_type, int64_t ldc, const float* bias, cudaStream_t stream) {
  SIEVE_CHECK(M >= 0 && N >= 0 && K >= 1, "gemm: M=%lld N=%lld K=%lld: M and N must be >= 0 and K >= 1",
              (long long)M, (long long)N, (long long)K);
  const int64_t min_lda = trans_a ? M : K, min_ldb = trans_b ? K : N;
  SIEVE_CHECK(lda >= std::max<int64_t>(1, min_lda) && ldb >= std::max<int64_t>(1, min_ldb) &&
                  ldc >= std::max<int64_t>(1, N),
              "gemm: M=%lld N=%lld K=%lld trans_a=%d trans_b=%d: lda=%lld, ldb=%lld, ldc=%lld must be at least %lld, "
              "%lld, %lld",
              (long long)M, (long long)N, (long long)K, (int)trans_a, (int)trans_b, (long long)lda, (long long)ldb,
              (long long)ldc, (long long)std::max<int64_t>(1, min_lda), (long long)std::max<int64_t>(1, min_ldb),
              (long long)std::max<int64_t>(1, N));
  if (M == 0 || N == 0) return;
  check_ptr(A, "gemm: A");
  check_ptr(B, "gemm: B");
  check_ptr(C, "gemm: C");
  check_ptr(C_in, "gemm: the addend R");

  const uint32_t align_c = std::min(alignment_of(C), alignment_of(C_in));  // one layout describes both
  const Key key{trans_a, trans_b, M, N, K, lda, ldb, ldc, (int)c_type, alignment_of(A), alignment_of(B), align_c,
                bias != nullptr};
  auto it = st_->plans.find(key);
  if (it == st_->plans.end()) {
    auto p = std::make_unique<Plan>();
    SIEVE_CUBLAS(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_a = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
    const cublasOperation_t op_b = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    SIEVE_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
    SIEVE_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
    if (bias) {  // one value per row of cuBLASLt's D (m = N): per column of ours
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      const cudaDataType bias_type = CUDA_R_32F;
      SIEVE_CUBLAS(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
      SIEVE_CUBLAS(
          cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type));
    }
    // Column-major shapes as stored: our B is (N, K) column-major when not transposed, (K, N) when
    // transposed; our A is (K, M) or (M, K); our C is (N, M).
    SIEVE_CUBLAS(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_16BF, trans_b ? K : N, trans_b ? N : K, ldb));
    SIEVE_CUBLAS(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_16BF, trans_a ? M : K, trans_a ? K : M, lda));
    SIEVE_CUBLAS(cublasLtMatrixLayoutCreate(&p->c, c_type, N, M, ldc));

    cublasLtMatmulPreference_t pref = nullptr;
    SIEVE_CUBLAS(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = kWorkspaceBytes;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                             sizeof ws);
    const uint32_t align[4] = {key.align_b, key.align_a, key.align_c, key.align_c};  // cuBLASLt's A, B, C, D
    const cublasLtMatmulPreferenceAttributes_t which[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4 && st == CUBLAS_STATUS_SUCCESS; i++)
      st = cublasLtMatmulPreferenceSetAttribute(pref, which[i], &align[i], sizeof align[i]);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(st_->handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &result, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    SIEVE_CUBLAS(st);
    if (found < 1)
      fail(SIEVE_E_INTERNAL, "cuBLASLt has no algorithm for gemm M=%lld N=%lld K=%lld trans_a=%d trans_b=%d (%s C)",
           (long long)M, (long long)N, (long long)K, (int)trans_a, (int)trans_b,
           c_type == CUDA_R_32F ? "fp32" : "bf16");
    p->algo = result.algo;
    it = st_->plans.emplace(key, std::move(p)).first;
  }
  const Plan& p = *it->second;
  if (bias) SIEVE_CUBLAS(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
  SIEVE_CUBLAS(cublasLtMatmul(st_->handle, p.desc, &alpha, B, p.a, A, p.b, &beta, C_in, p.c, C, p.c, &p.algo,
                              st_->workspace.get(), kWorkspaceBytes, stream));
}

}  // namespace sieve::cuda
