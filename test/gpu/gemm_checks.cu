// gemm_checks.cu — the dense (cuBLASLt) and 2:4 (cuSPARSELt) GEMMs against a float64 product
// of the same bf16-rounded inputs, their caches, and the shapes they refuse.
//
// Tolerances (relative error, check.h):
//   - fp32 results: kTolF32 (1e-5). The reference multiplies the very bf16 values the GPU
//     reads, so what remains is fp32 accumulation over K terms; products of bf16 values are
//     exact in fp32, and summation error grows like sqrt(K) u (u = 6e-8): about 1e-6 at the
//     K <= 768 used here, so 1e-5 leaves a margin of ~10 while catching any bf16 or tf32
//     rounding inside the product (>= 1e-3).
//   - bf16 results: kTolBf16 (1e-2). The final rounding to bf16 alone is up to 2^-9 = 2e-3 of
//     each value (about 1e-3 as a norm).
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <limits>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "check.h"
#include "cpu/sparsity.h"
#include "cuda/device_buffer.cuh"
#include "cuda/gemm.cuh"
#include "cuda/sparse_gemm.cuh"

namespace {

using bf16 = __nv_bfloat16;
using sieve::cuda::Blas;
using sieve::cuda::DeviceBuffer;
using sieve::cuda::Compression;
using sieve::cuda::SparseAlgo;
using sieve::cuda::SparseLinear;
using sieve::cuda::SparseLt;
using sieve::cuda::SparseWeightGrad;
using sieve::cuda::to_device;
using sieve::gpu_check::Check;
using sieve::gpu_check::kTolBf16;
using sieve::gpu_check::kTolF32;
using sieve::gpu_check::normal;

std::vector<bf16> to_bf16(const std::vector<float>& x) {
  std::vector<bf16> y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = __float2bfloat16(x[i]);
  return y;
}
std::vector<float> to_float(const std::vector<bf16>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = __bfloat162float(x[i]);
  return y;
}
// x rounded to bf16 (what the GPU reads), as floats
std::vector<float> rounded(const std::vector<float>& x) { return to_float(to_bf16(x)); }

// C (M, N) = alpha op(A) op(B) + beta C0 in double, row-major; C0 may be empty when beta == 0.
// op(A) (M, K) is A (M, K) or, when ta, A (K, M), with leading dimension lda; likewise B.
std::vector<double> ref_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                             const std::vector<float>& A, int64_t lda, const std::vector<float>& B, int64_t ldb,
                             double beta, const std::vector<float>& C0, int64_t ldc) {
  // gather op(A) by rows and op(B) by columns, so every dot product runs over contiguous memory
  std::vector<double> a((size_t)(M * K)), b((size_t)(N * K));
  for (int64_t i = 0; i < M; i++)
    for (int64_t k = 0; k < K; k++) a[(size_t)(i * K + k)] = ta ? A[(size_t)(k * lda + i)] : A[(size_t)(i * lda + k)];
  for (int64_t j = 0; j < N; j++)
    for (int64_t k = 0; k < K; k++) b[(size_t)(j * K + k)] = tb ? B[(size_t)(j * ldb + k)] : B[(size_t)(k * ldb + j)];
  std::vector<double> c((size_t)(M * N));
#pragma omp parallel for
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) s += a[(size_t)(i * K + k)] * b[(size_t)(j * K + k)];
      c[(size_t)(i * N + j)] = alpha * s + (beta != 0 ? beta * C0[(size_t)(i * ldc + j)] : 0.0);
    }
  return c;
}

// The (M, N) block of a row-major matrix with leading dimension ld.
std::vector<float> block(const std::vector<float>& x, int64_t M, int64_t N, int64_t ld) {
  std::vector<float> y((size_t)(M * N));
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) y[(size_t)(i * N + j)] = x[(size_t)(i * ld + j)];
  return y;
}

double rel_err(const std::vector<float>& out, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < out.size(); i++) {
    num += ((double)out[i] - ref[i]) * ((double)out[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// w (R, K) pruned 2:4 along K by magnitude, or with a transposable mask (2:4 along R too).
std::vector<float> pruned(std::vector<float> w, int64_t R, int64_t K, bool transposable) {
  std::vector<float> mask(w.size());
  if (transposable) sieve::cpu::mask24_transposable(mask.data(), w.data(), R, K);
  else sieve::cpu::mask24_magnitude(mask.data(), w.data(), R, K);
  for (size_t i = 0; i < w.size(); i++) w[i] *= mask[i];
  return w;
}

// Runs body, which must throw sieve::Error with SIEVE_E_INVALID_ARGUMENT.
template <class F>
void refused(Check& c, const std::string& what, F body) {
  try {
    body();
    c.expect(false, what + ": accepted");
  } catch (const sieve::Error& e) {
    c.expect(e.status == SIEVE_E_INVALID_ARGUMENT, what + ": status " + std::to_string(e.status) + ": " + e.message);
  }
}

const char* tname(bool ta, bool tb) { return ta ? (tb ? "TT" : "TN") : (tb ? "NT" : "NN"); }

// One dense product through Blas, C fp32 or bf16, against the float64 reference.
template <class CT>
void dense_case(Check& c, Blas& blas, bool ta, bool tb, int64_t M, int64_t N, int64_t K, int64_t pad, float alpha,
                float beta, double tol) {
  const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  const auto A = rounded(normal((ta ? K : M) * lda)), B = rounded(normal((tb ? N : K) * ldb));
  // C holds NaN when beta == 0: a product that reads C then fails
  auto C0 = beta != 0 ? rounded(normal(M * ldc)) : std::vector<float>((size_t)(M * ldc), std::nanf(""));
  auto dA = to_device(to_bf16(A)), dB = to_device(to_bf16(B));
  std::vector<float> out;
  if constexpr (std::is_same_v<CT, float>) {
    auto dC = to_device(C0);
    blas.gemm(ta, tb, M, N, K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc, nullptr);
    out = dC.download();
  } else {
    auto dC = to_device(to_bf16(C0));
    blas.gemm(ta, tb, M, N, K, alpha, dA.get(), lda, dB.get(), ldb, beta, dC.get(), ldc, nullptr);
    out = to_float(dC.download());
  }
  const auto ref = ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc);
  char what[96];
  snprintf(what, sizeof what, "%s %lldx%lldx%lld%s", tname(ta, tb), (long long)M, (long long)N, (long long)K,
           pad ? " padded" : "");
  c.close(what, block(out, M, N, ldc), ref, tol);
  if (pad) {  // the columns past N are not C's: they keep their values (NaN included)
    const auto before = std::is_same_v<CT, float> ? C0 : rounded(C0);
    int64_t touched = 0;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = N; j < ldc; j++) {
        const float o = out[(size_t)(i * ldc + j)], b = before[(size_t)(i * ldc + j)];
        touched += !(o == b || (std::isnan(o) && std::isnan(b)));
      }
    c.expect(touched == 0, std::string(what) + ": " + std::to_string(touched) + " values past column N changed");
  }
}

}  // namespace

// ---- dense: cuBLASLt

SIEVE_GPU_CHECK(gemm_fp32_out_all_transposes) {
  Blas blas;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      dense_case<float>(c, blas, ta, tb, 37, 53, 29, 0, 1.0f, 0.0f, kTolF32);
      dense_case<float>(c, blas, ta, tb, 64, 96, 768, 0, 1.5f, 0.5f, kTolF32);
    }
}

SIEVE_GPU_CHECK(gemm_bf16_out_all_transposes) {
  Blas blas;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      dense_case<bf16>(c, blas, ta, tb, 37, 53, 29, 0, 1.0f, 0.0f, kTolBf16);
      dense_case<bf16>(c, blas, ta, tb, 64, 96, 768, 0, -0.75f, 1.0f, kTolBf16);
    }
}

SIEVE_GPU_CHECK(gemm_padded_leading_dimensions) {
  Blas blas;
  dense_case<float>(c, blas, false, false, 37, 53, 29, 3, 1.0f, 0.0f, kTolF32);
  dense_case<float>(c, blas, true, true, 40, 24, 72, 8, 2.0f, -1.0f, kTolF32);
  dense_case<bf16>(c, blas, false, true, 33, 48, 64, 5, 1.0f, 0.5f, kTolBf16);
}

// The epilogue of gemm_add: C = alpha op(A) op(B) + R + bias per column, each of R and the bias
// optional, C's old values (NaN) never read unless C is R; a bias that is not 16-byte aligned is
// refused.
SIEVE_GPU_CHECK(gemm_add_epilogue) {
  Blas blas;
  for (bool ta : {false, true})
    for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{37, 52, 29}, {64, 96, 768}})
      for (int form = 0; form < 4; form++) {  // bias, residual, both, both with R == C
        const bool with_bias = form != 1, with_res = form != 0, in_place = form == 3;
        const auto A = rounded(normal(M * K)), B = rounded(normal(K * N)), bias = normal(N + 4), R = normal(M * N);
        auto dA = to_device(to_bf16(A)), dB = to_device(to_bf16(B));
        auto dbias = to_device(bias), dR = to_device(R);
        auto dC = to_device(std::vector<float>((size_t)(M * N), std::nanf("")));
        float* out = in_place ? dR.get() : dC.get();
        blas.gemm_add(ta, false, M, N, K, 1.5f, dA.get(), ta ? M : K, dB.get(), N, with_bias ? dbias.get() + 4 : nullptr,
                      with_res ? dR.get() : nullptr, out, N, nullptr);
        // ta: the same A values read as (K, M)
        std::vector<double> ref = ref_gemm(ta, false, M, N, K, 1.5, A, ta ? M : K, B, N, 0.0, {}, N);
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < N; j++) {
            if (with_bias) ref[(size_t)(i * N + j)] += bias[(size_t)(4 + j)];
            if (with_res) ref[(size_t)(i * N + j)] += R[(size_t)(i * N + j)];
          }
        const char* what[] = {" + bias", " + R", " + R + bias", " + R + bias (C = R)"};
        c.close(std::string(tname(ta, false)) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                    std::to_string(K) + what[form],
                in_place ? dR.download() : dC.download(), ref, kTolF32);
      }
  DeviceBuffer<bf16> A(64), B(64);
  DeviceBuffer<float> C(64), bias(8);
  refused(c, "a bias 4 bytes off", [&] {
    blas.gemm_add(false, false, 4, 4, 4, 1, A.get(), 4, B.get(), 4, bias.get() + 1, nullptr, C.get(), 4, nullptr);
  });
}

SIEVE_GPU_CHECK(gemm_plans_are_cached_per_problem) {
  Blas blas;
  const int64_t M = 32, N = 48, K = 64;
  auto A = to_device(to_bf16(normal(M * K))), B = to_device(to_bf16(normal(K * N)));
  DeviceBuffer<float> C(M * N);
  blas.gemm(false, false, M, N, K, 1, A.get(), K, B.get(), N, 0, C.get(), N, nullptr);
  c.expect(blas.plans() == 1, "one plan after the first call, " + std::to_string(blas.plans()) + " seen");
  blas.gemm(false, false, M, N, K, 1, A.get(), K, B.get(), N, 0, C.get(), N, nullptr);
  c.expect(blas.plans() == 1, "still one plan after the same call, " + std::to_string(blas.plans()) + " seen");
  blas.gemm(false, false, M / 2, N, K, 1, A.get(), K, B.get(), N, 0, C.get(), N, nullptr);
  c.expect(blas.plans() == 2, "a second plan for another M, " + std::to_string(blas.plans()) + " seen");
}

SIEVE_GPU_CHECK(gemm_refuses_bad_sizes) {
  Blas blas;
  DeviceBuffer<bf16> A(64), B(64);
  DeviceBuffer<float> C(64);
  refused(c, "K = 0", [&] { blas.gemm(false, false, 4, 4, 0, 1, A.get(), 4, B.get(), 4, 0, C.get(), 4, nullptr); });
  refused(c, "M < 0", [&] { blas.gemm(false, false, -1, 4, 4, 1, A.get(), 4, B.get(), 4, 0, C.get(), 4, nullptr); });
  refused(c, "lda < K", [&] { blas.gemm(false, false, 4, 4, 8, 1, A.get(), 4, B.get(), 4, 0, C.get(), 4, nullptr); });
  refused(c, "ldb < K (trans_b)",
          [&] { blas.gemm(false, true, 4, 4, 8, 1, A.get(), 8, B.get(), 4, 0, C.get(), 4, nullptr); });
  refused(c, "ldc < N", [&] { blas.gemm(false, false, 4, 8, 4, 1, A.get(), 4, B.get(), 8, 0, C.get(), 4, nullptr); });
}

// ---- 2:4: cuSPARSELt

SIEVE_GPU_CHECK(cusparselt_version) {
  SparseLt lt;
  const int v = lt.version();
  printf("       cuSPARSELt 0.%d.%d loaded (compiled against 0.%d.%d)\n", v / 100, v % 100, CUSPARSELT_VER_MINOR,
         CUSPARSELT_VER_PATCH);
  c.expect(v >= 600, "cuSPARSELt 0.6 or later is needed (CUSPARSE_COMPUTE_32F for bf16), version " +
                         std::to_string(v) + " loaded");
}

SIEVE_GPU_CHECK(sparse_forward_matches_reference) {
  SparseLt lt;
  struct Shape {
    int64_t N, OC, IC;
  };
  for (Shape s : {Shape{64, 64, 64}, Shape{48, 96, 160}, Shape{128, 3072, 768}, Shape{128, 768, 3072}})
    for (SparseAlgo algo : {SparseAlgo::search, SparseAlgo::default_id}) {
      const auto W = rounded(pruned(normal(s.OC * s.IC), s.OC, s.IC, false));
      const auto X = rounded(normal(s.N * s.IC));
      auto dW = to_device(to_bf16(W)), dX = to_device(to_bf16(X));
      DeviceBuffer<bf16> dY(s.N * s.OC);
      SparseLinear layer(lt, s.OC, s.IC, false, algo);
      char what[96];
      snprintf(what, sizeof what, "%lldx%lldx%lld %s", (long long)s.N, (long long)s.OC, (long long)s.IC,
               algo == SparseAlgo::search ? "searched" : "default");
      c.expect(layer.pattern_ok(dW.get(), false, nullptr), std::string(what) + ": PruneCheck rejects a 2:4 W");

      layer.forward(dY.get(), dX.get(), dW.get(), 1, s.N, false, nullptr);
      const auto y1 = to_float(dY.download());
      const auto ref = ref_gemm(false, true, s.N, s.OC, s.IC, 1, X, s.IC, W, s.IC, 0, {}, s.OC);
      c.close(what, y1, ref, kTolBf16);
      c.expect(layer.algorithm(s.N, false) >= 0, std::string(what) + ": no algorithm recorded");

      // accumulate: y += X W^T, onto the bf16 values y1 holds
      layer.forward(dY.get(), dX.get(), dW.get(), 1, s.N, true, nullptr);
      std::vector<double> ref2(ref.size());
      for (size_t i = 0; i < ref.size(); i++) ref2[i] = (double)y1[i] + ref[i];
      c.close(std::string(what) + " +=", to_float(dY.download()), ref2, kTolBf16);
      c.expect(layer.compressions() == 1, std::string(what) + ": compressed " +
                                              std::to_string(layer.compressions()) + " times for one version");
    }
}

SIEVE_GPU_CHECK(sparse_backward_input_matches_reference) {
  SparseLt lt;
  struct Shape {
    int64_t N, OC, IC;
  };
  for (Shape s : {Shape{64, 64, 64}, Shape{32, 96, 160}, Shape{128, 3072, 768}}) {
    const auto W = rounded(pruned(normal(s.OC * s.IC), s.OC, s.IC, true));
    const auto G = rounded(normal(s.N * s.OC)), X = rounded(normal(s.N * s.IC));
    auto dW = to_device(to_bf16(W)), dG = to_device(to_bf16(G)), dX = to_device(to_bf16(X));
    DeviceBuffer<bf16> dI(s.N * s.IC), dY(s.N * s.OC);
    SparseLinear layer(lt, s.OC, s.IC, true);
    char what[96];
    snprintf(what, sizeof what, "dinp %lldx%lldx%lld", (long long)s.N, (long long)s.OC, (long long)s.IC);
    c.expect(layer.pattern_ok(dW.get(), false, nullptr) && layer.pattern_ok(dW.get(), true, nullptr),
             std::string(what) + ": PruneCheck rejects a transposable 2:4 W");

    layer.backward_input(dI.get(), dG.get(), dW.get(), 7, s.N, false, nullptr);
    const auto d1 = to_float(dI.download());
    const auto ref = ref_gemm(false, false, s.N, s.IC, s.OC, 1, G, s.OC, W, s.IC, 0, {}, s.IC);
    c.close(what, d1, ref, kTolBf16);

    layer.backward_input(dI.get(), dG.get(), dW.get(), 7, s.N, true, nullptr);
    std::vector<double> ref2(ref.size());
    for (size_t i = 0; i < ref.size(); i++) ref2[i] = (double)d1[i] + ref[i];
    c.close(std::string(what) + " +=", to_float(dI.download()), ref2, kTolBf16);

    // the same layer's forward product, from its other compressed copy
    layer.forward(dY.get(), dX.get(), dW.get(), 7, s.N, false, nullptr);
    snprintf(what, sizeof what, "out %lldx%lldx%lld", (long long)s.N, (long long)s.OC, (long long)s.IC);
    c.close(what, to_float(dY.download()),
            ref_gemm(false, true, s.N, s.OC, s.IC, 1, X, s.IC, W, s.IC, 0, {}, s.OC), kTolBf16);
    c.expect(layer.compressions() == 1, std::string(what) + ": compressed " + std::to_string(layer.compressions()) +
                                            " times for one version (both copies at once)");
  }
}

SIEVE_GPU_CHECK(sparse_pattern_check_and_transposable_requirement) {
  SparseLt lt;
  const int64_t OC = 128, IC = 256, N = 32;
  // 2:4 along IC only: fine for the forward product, refused for the input gradient
  const auto W = rounded(pruned(normal(OC * IC), OC, IC, false));
  auto dW = to_device(to_bf16(W)), dDense = to_device(to_bf16(normal(OC * IC)));
  SparseLinear layer(lt, OC, IC);
  c.expect(layer.pattern_ok(dW.get(), false, nullptr), "PruneCheck rejects W pruned along IC");
  c.expect(!layer.pattern_ok(dW.get(), true, nullptr), "PruneCheck accepts along OC a W pruned along IC only");
  c.expect(!layer.pattern_ok(dDense.get(), false, nullptr), "PruneCheck accepts a dense W");
  DeviceBuffer<bf16> dG(N * OC), dI(N * IC);
  refused(c, "backward_input without a transposable W",
          [&] { layer.backward_input(dI.get(), dG.get(), dW.get(), 1, N, false, nullptr); });
}

SIEVE_GPU_CHECK(sparse_recompresses_only_on_new_version) {
  SparseLt lt;
  const int64_t N = 64, OC = 256, IC = 512;
  const auto W0 = rounded(pruned(normal(OC * IC), OC, IC, false));
  const auto W1 = rounded(pruned(normal(OC * IC), OC, IC, false));
  const auto X = rounded(normal(N * IC));
  const auto ref0 = ref_gemm(false, true, N, OC, IC, 1, X, IC, W0, IC, 0, {}, OC);
  const auto ref1 = ref_gemm(false, true, N, OC, IC, 1, X, IC, W1, IC, 0, {}, OC);
  auto dW = to_device(to_bf16(W0)), dX = to_device(to_bf16(X));
  DeviceBuffer<bf16> dY(N * OC);
  SparseLinear layer(lt, OC, IC);

  layer.forward(dY.get(), dX.get(), dW.get(), 1, N, false, nullptr);
  c.close("version 1, W0", to_float(dY.download()), ref0, kTolBf16);
  layer.forward(dY.get(), dX.get(), dW.get(), 1, N, false, nullptr);
  c.expect(layer.compressions() == 1, "two calls at version 1 compressed " + std::to_string(layer.compressions()) +
                                          " times");

  // W1 written over W0 under the same version: the cached compression (W0) is what runs
  dW.upload(to_bf16(W1));
  layer.forward(dY.get(), dX.get(), dW.get(), 1, N, false, nullptr);
  const auto stale = to_float(dY.download());
  c.close("version 1 kept, W1 written: still W0", stale, ref0, kTolBf16);
  c.expect(rel_err(stale, ref1) > 0.5, "the product already follows W1 without a new version");
  c.expect(layer.compressions() == 1, "same version recompressed");

  layer.forward(dY.get(), dX.get(), dW.get(), 2, N, false, nullptr);
  c.close("version 2: W1", to_float(dY.download()), ref1, kTolBf16);
  c.expect(layer.compressions() == 2, "version 2 compressed " + std::to_string(layer.compressions() - 1) +
                                          " times, not once");

  // another buffer under the same version is another weight
  auto dW0 = to_device(to_bf16(W0));
  layer.forward(dY.get(), dX.get(), dW0.get(), 2, N, false, nullptr);
  c.close("version 2, other buffer: W0", to_float(dY.download()), ref0, kTolBf16);
  c.expect(layer.compressions() == 3, "a new weight pointer did not recompress");
  c.expect(!layer.prepare(dW0.get(), 2, nullptr), "prepare() compressed an unchanged weight");
}

SIEVE_GPU_CHECK(sparse_refuses_bad_shapes) {
  SparseLt lt;
  refused(c, "OC = 20", [&] { SparseLinear l(lt, 20, 64); });
  refused(c, "IC = 40", [&] { SparseLinear l(lt, 64, 40); });
  refused(c, "IC = 0", [&] { SparseLinear l(lt, 64, 0); });
  const int64_t OC = 64, IC = 64;
  SparseLinear layer(lt, OC, IC, true);
  DeviceBuffer<bf16> w(OC * IC), x(64 * IC), y(64 * OC);
  auto host_w = to_bf16(rounded(pruned(normal(OC * IC), OC, IC, true)));
  w.upload(host_w);
  refused(c, "N = 24", [&] { layer.forward(y.get(), x.get(), w.get(), 1, 24, false, nullptr); });
  refused(c, "N = 0", [&] { layer.forward(y.get(), x.get(), w.get(), 1, 0, false, nullptr); });
  refused(c, "inp 2 bytes off alignment",
          [&] { layer.forward(y.get(), x.get() + 1, w.get(), 1, 16, false, nullptr); });
  refused(c, "w 2 bytes off alignment", [&] { layer.forward(y.get(), x.get(), w.get() + 1, 1, 16, false, nullptr); });
  refused(c, "backward_input N = 8", [&] { layer.backward_input(x.get(), y.get(), w.get(), 1, 8, false, nullptr); });
  refused(c, "null out", [&] { layer.forward(nullptr, x.get(), w.get(), 1, 16, false, nullptr); });
}

// compress24 (our writer of cuSPARSELt's compressed form) against cuSPARSELt's own compression:
// the same products, bit for bit, from layers that differ only in who compressed W. Both run
// cuSPARSELt's default kernel, so equal bytes give equal results. Some kept entries are zero,
// where compress24's choice of kept position may differ from cuSPARSELt's but the product may not.
SIEVE_GPU_CHECK(own_compression_matches_cusparselt) {
  SparseLt lt;
  struct Shape {
    int64_t N, OC, IC;
    bool own_fwd, own_bwd;  // whether compress24 fits (M % 64, K % 32) each product
  };
  for (Shape s : {Shape{64, 64, 64, true, true}, Shape{128, 3072, 768, true, true}, Shape{64, 768, 3072, true, true},
                  Shape{32, 192, 320, true, true}, Shape{48, 128, 96, true, false}, Shape{16, 96, 128, false, true}}) {
    auto W = rounded(pruned(normal(s.OC * s.IC), s.OC, s.IC, true));
    for (float& w : W)
      if (std::uniform_real_distribution<float>(0, 1)(sieve::gpu_check::rng()) < 0.05f) w = 0.0f;
    const auto X = rounded(normal(s.N * s.IC)), G = rounded(normal(s.N * s.OC));
    auto dW = to_device(to_bf16(W)), dX = to_device(to_bf16(X)), dG = to_device(to_bf16(G));
    SparseLinear own(lt, s.OC, s.IC, true, SparseAlgo::default_id, Compression::own);
    SparseLinear lib(lt, s.OC, s.IC, true, SparseAlgo::default_id, Compression::cusparselt);
    char what[96];
    snprintf(what, sizeof what, "%lldx%lldx%lld", (long long)s.N, (long long)s.OC, (long long)s.IC);
    c.expect(own.own_compression(false) == s.own_fwd && own.own_compression(true) == s.own_bwd,
             std::string(what) + ": compress24 used for forward " + std::to_string(own.own_compression(false)) +
                 ", input gradient " + std::to_string(own.own_compression(true)) +
                 " (a 0 where it fits: its bytes differed from cuSPARSELt's on the probe)");
    c.expect(!lib.own_compression(false) && !lib.own_compression(true),
             std::string(what) + ": Compression::cusparselt used compress24");
    DeviceBuffer<bf16> y_own(s.N * s.OC), y_lib(s.N * s.OC), d_own(s.N * s.IC), d_lib(s.N * s.IC);
    own.forward(y_own.get(), dX.get(), dW.get(), 1, s.N, false, nullptr);
    lib.forward(y_lib.get(), dX.get(), dW.get(), 1, s.N, false, nullptr);
    own.backward_input(d_own.get(), dG.get(), dW.get(), 1, s.N, false, nullptr);
    lib.backward_input(d_lib.get(), dG.get(), dW.get(), 1, s.N, false, nullptr);
    c.equal(std::string(what) + " out", to_float(y_own.download()), to_float(y_lib.download()));
    c.equal(std::string(what) + " dinp", to_float(d_own.download()), to_float(d_lib.download()));
    c.close(std::string(what) + " out vs float64", to_float(y_own.download()),
            ref_gemm(false, true, s.N, s.OC, s.IC, 1, X, s.IC, W, s.IC, 0, {}, s.OC), kTolBf16);
  }
  // the model's choice comes from SIEVE_CUDA_COMPRESS; a value it does not know is refused
  const char* saved = std::getenv("SIEVE_CUDA_COMPRESS");
  const std::string keep = saved ? saved : "";
  setenv("SIEVE_CUDA_COMPRESS", "cusparseLT", 1);
  refused(c, "SIEVE_CUDA_COMPRESS=cusparseLT", [] { sieve::cuda::compression_from_env(); });
  setenv("SIEVE_CUDA_COMPRESS", "cusparselt", 1);
  c.expect(sieve::cuda::compression_from_env() == Compression::cusparselt, "SIEVE_CUDA_COMPRESS=cusparselt not read");
  if (saved) setenv("SIEVE_CUDA_COMPRESS", keep.c_str(), 1);
  else unsetenv("SIEVE_CUDA_COMPRESS");
}

// The third product of fully 2:4 training, dW (OC, IC) = dZ^T X with dZ (N, OC) MVUE's estimate
// (2:4 along the N tokens, cpu::mvue24), against the float64 product of the same bf16 values;
// compress24 and cuSPARSELt's compression of dZ give the same bits (the same default kernel);
// shapes compress24 does not fit (N % 32, OC % 64) are compressed by cuSPARSELt; bad shapes refused.
SIEVE_GPU_CHECK(sparse_weight_grad_matches_reference) {
  SparseLt lt;
  struct Shape {
    int64_t N, OC, IC;
    bool own;  // whether compress24 fits op(A) = dZ^T (M = OC % 64, K = N % 32)
  };
  for (Shape s : {Shape{64, 64, 64, true}, Shape{256, 192, 96, true}, Shape{1024, 768, 3072, true},
                  Shape{2048, 3072, 768, true}, Shape{48, 128, 64, false}, Shape{128, 48, 80, false}})
    for (SparseAlgo algo : {SparseAlgo::search, SparseAlgo::default_id}) {
      std::vector<float> Z((size_t)(s.N * s.OC));
      const auto G = normal(s.N * s.OC);
      sieve::cpu::mvue24(Z.data(), G.data(), s.N, s.OC, s.OC, s.OC, sieve::gpu_check::rng()());
      Z = rounded(Z);
      const auto X = rounded(normal(s.N * s.IC));
      auto dZ = to_device(to_bf16(Z)), dX = to_device(to_bf16(X));
      SparseWeightGrad own(lt, s.OC, s.IC, algo, Compression::own);
      SparseWeightGrad lib(lt, s.OC, s.IC, algo, Compression::cusparselt);
      DeviceBuffer<bf16> d_own(s.OC * s.IC), d_lib(s.OC * s.IC);
      own.multiply(d_own.get(), dZ.get(), dX.get(), s.N, nullptr);
      lib.multiply(d_lib.get(), dZ.get(), dX.get(), s.N, nullptr);
      char what[96];
      snprintf(what, sizeof what, "dW %lldx%lldx%lld %s", (long long)s.N, (long long)s.OC, (long long)s.IC,
               algo == SparseAlgo::search ? "searched" : "default");
      c.expect(own.own_compression(s.N) == s.own && !lib.own_compression(s.N),
               std::string(what) + ": compress24 used " + std::to_string(own.own_compression(s.N)) +
                   " (a 0 where it fits: its bytes differed from cuSPARSELt's on the probe)");
      c.expect(own.algorithm(s.N) >= 0, std::string(what) + ": no algorithm recorded");
      const auto out = to_float(d_own.download());
      c.close(what, out, ref_gemm(true, false, s.OC, s.IC, s.N, 1, Z, s.OC, X, s.IC, 0, {}, s.IC), kTolBf16);
      if (algo == SparseAlgo::default_id) c.equal(std::string(what) + " own vs cuSPARSELt compression", out,
                                                  to_float(d_lib.download()));
    }
  refused(c, "dW OC = 20", [&] { SparseWeightGrad g(lt, 20, 64); });
  refused(c, "dW IC = 0", [&] { SparseWeightGrad g(lt, 64, 0); });
  SparseWeightGrad g(lt, 64, 64);
  DeviceBuffer<bf16> z(64 * 64), x(64 * 64), dw(64 * 64);
  refused(c, "dW N = 24", [&] { g.multiply(dw.get(), z.get(), x.get(), 24, nullptr); });
  refused(c, "dW dout 2 bytes off alignment", [&] { g.multiply(dw.get(), z.get() + 1, x.get(), 32, nullptr); });
  refused(c, "dW null out", [&] { g.multiply(nullptr, z.get(), x.get(), 32, nullptr); });
}

// Determinism across processes (docs/cuda.md): a 2:4 product runs the kernel cusparseLtMatmulSearch
// timed fastest, once per model, so a resumed run may run another one. The bits must not depend on
// which: at training sizes, cuSPARSELt's default kernel and two independent searches (each with its
// own SparseLt) give the same forward and weight-gradient products.
SIEVE_GPU_CHECK(sparse_kernel_choice_keeps_the_bits) {
  struct Shape {
    int64_t N, OC, IC;
  };
  const SparseAlgo choices[] = {SparseAlgo::default_id, SparseAlgo::search, SparseAlgo::search};
  for (Shape s : {Shape{16384, 1024, 4096}, Shape{16384, 4096, 1024}, Shape{2048, 768, 3072}}) {
    const auto W = rounded(pruned(normal(s.OC * s.IC), s.OC, s.IC, false));
    const auto X = rounded(normal(s.N * s.IC));
    std::vector<float> Z((size_t)(s.N * s.OC));
    const auto G = normal(s.N * s.OC);
    sieve::cpu::mvue24(Z.data(), G.data(), s.N, s.OC, s.OC, s.OC, sieve::gpu_check::rng()());
    auto dW = to_device(to_bf16(W)), dX = to_device(to_bf16(X)), dZ = to_device(to_bf16(rounded(Z)));
    std::vector<std::vector<float>> forward, weight_grad;
    std::string kernels;
    for (SparseAlgo algo : choices) {
      SparseLt lt;  // a search of its own, as a new process makes
      SparseLinear layer(lt, s.OC, s.IC, false, algo);
      SparseWeightGrad grad(lt, s.OC, s.IC, algo);
      DeviceBuffer<bf16> dY(s.N * s.OC), dG(s.OC * s.IC);
      layer.forward(dY.get(), dX.get(), dW.get(), 1, s.N, false, nullptr);
      grad.multiply(dG.get(), dZ.get(), dX.get(), s.N, nullptr);
      forward.push_back(to_float(dY.download()));
      weight_grad.push_back(to_float(dG.download()));
      kernels += " " + std::to_string(layer.algorithm(s.N, false)) + "/" + std::to_string(grad.algorithm(s.N));
    }
    char what[96];
    snprintf(what, sizeof what, "%lldx%lldx%lld (kernels forward/dW:", (long long)s.N, (long long)s.OC,
             (long long)s.IC);
    const std::string name = what + kernels + ")";
    c.equal(name + " forward, default vs searched", forward[0], forward[1]);
    c.equal(name + " forward, two searches", forward[1], forward[2]);
    c.equal(name + " dW, default vs searched", weight_grad[0], weight_grad[1]);
    c.equal(name + " dW, two searches", weight_grad[1], weight_grad[2]);
  }
}
