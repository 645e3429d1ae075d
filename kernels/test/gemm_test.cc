// gemm_test.cc — the engine GEMM (split over threads), the portable fallback GEMM, and the
// library dispatch, against a float64 reference for every transpose case; and the split's
// promise that the bits do not depend on the thread count.
#include <gtest/gtest.h>

#include <vector>

#include "common.h"
#include "gemm.h"
#include "util.h"

using namespace testutil;

namespace {

struct Case {
  bool ta, tb;
  int64_t M, N, K;
};

// C = alpha op(A) op(B) + beta C0 in double
std::vector<double> reference(const Case& c, const std::vector<float>& A, const std::vector<float>& B,
                              const std::vector<float>& C0, float alpha, float beta) {
  const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  std::vector<double> out(c.M * c.N);
  for (int64_t i = 0; i < c.M; i++)
    for (int64_t j = 0; j < c.N; j++) {
      double s = 0;
      for (int64_t k = 0; k < c.K; k++)
        s += (double)(c.ta ? A[k * lda + i] : A[i * lda + k]) * (double)(c.tb ? B[j * ldb + k] : B[k * ldb + j]);
      out[i * c.N + j] = alpha * s + beta * (double)C0[i * c.N + j];
    }
  return out;
}

using Gemm = void (*)(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                      float*, int64_t);

void engine(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
            int64_t ldb, float beta, float* C, int64_t ldc) {
  sieve::cpu::sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

void check(Gemm gemm, const char* name) {
  // small and split-sized shapes, every transpose combination, beta 0 and 1
  const Case cases[] = {{false, false, 5, 7, 3},     {false, true, 9, 4, 11},    {true, false, 6, 6, 17},
                        {true, true, 3, 8, 5},       {false, true, 300, 96, 64}, {true, false, 96, 64, 300},
                        {false, false, 257, 70, 90}, {false, true, 40, 400, 130}};
  for (const Case& c : cases)
    for (float beta : {0.0f, 1.0f}) {
      auto A = randn(c.M * c.K, 1), B = randn(c.K * c.N, 2), C0 = randn(c.M * c.N, 3);
      auto Cm = C0;
      const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
      gemm(c.ta, c.tb, c.M, c.N, c.K, 0.5f, A.data(), lda, B.data(), ldb, beta, Cm.data(), c.N);
      // float32 dot products of up to 300 terms: relative error well under 1e-5
      EXPECT_TRUE(close(Cm, reference(c, A, B, C0, 0.5f, beta), 1e-5, name))
          << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K << " beta=" << beta;
    }
}

}  // namespace

TEST(Gemm, EngineMatchesReference) { check(engine, "engine sgemm"); }
TEST(Gemm, PortableMatchesReference) { check(sieve::cpu::sgemm_portable, "portable sgemm"); }
TEST(Gemm, SerialMatchesReference) { check(sieve::cpu::sgemm_serial, "serial sgemm"); }

TEST(Gemm, BetaZeroIgnoresNaNsInC) {
  auto A = randn(4 * 3, 1), B = randn(3 * 5, 2);
  std::vector<float> Cm(4 * 5, std::nanf(""));
  sieve::cpu::sgemm(false, false, 4, 5, 3, 1.0f, A.data(), 3, B.data(), 5, 0.0f, Cm.data(), 5, nullptr);
  for (float x : Cm) EXPECT_TRUE(std::isfinite(x));
  std::fill(Cm.begin(), Cm.end(), std::nanf(""));
  sieve::cpu::sgemm_portable(false, false, 4, 5, 3, 1.0f, A.data(), 3, B.data(), 5, 0.0f, Cm.data(), 5);
  for (float x : Cm) EXPECT_TRUE(std::isfinite(x));
}

TEST(Gemm, SplitIsBitIdenticalAcrossThreadCounts) {
  const int64_t M = 1000, N = 384, K = 128;
  auto A = randn(M * K, 7), B = randn(N * K, 8);
  std::vector<float> c1(M * N), c2(M * N), c3(K * N), c4(K * N);
  {
    sieve::cpu::ThreadScope one(1);
    sieve::cpu::sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, c1.data(), N, nullptr);
    sieve::cpu::sgemm(true, false, K, N, M, 1.0f, A.data(), K, c1.data(), N, 0.0f, c3.data(), N, nullptr);
  }
  {
    sieve::cpu::ThreadScope two(2);
    sieve::cpu::sgemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, c2.data(), N, nullptr);
    sieve::cpu::sgemm(true, false, K, N, M, 1.0f, A.data(), K, c2.data(), N, 0.0f, c4.data(), N, nullptr);
  }
  EXPECT_TRUE(same_bits(c1.data(), c2.data(), M * N));
  EXPECT_TRUE(same_bits(c3.data(), c4.data(), K * N));
}

TEST(Gemm, StatsCountFlopsAndTime) {
  sieve::cpu::GemmStats stats;
  auto A = randn(64 * 32, 1), B = randn(32 * 16, 2);
  std::vector<float> Cm(64 * 16);
  sieve::cpu::sgemm(false, false, 64, 16, 32, 1.0f, A.data(), 32, B.data(), 16, 0.0f, Cm.data(), 16, &stats);
  EXPECT_EQ(stats.flops, 2.0 * 64 * 16 * 32);
  EXPECT_GE(stats.seconds, 0.0);
}

TEST(Gemm, BenchHookRunsBothPaths) {
  double s0 = -1, s1 = -1;
  SIEVE_OK_OR_FAIL(sieve_bench_sgemm(&s0, 0, 1, 128, 96, 64, 2, 2, 0));
  SIEVE_OK_OR_FAIL(sieve_bench_sgemm(&s1, 0, 1, 128, 96, 64, 2, 2, 1));
  EXPECT_GT(s0, 0.0);
  EXPECT_GT(s1, 0.0);
  EXPECT_EQ(sieve_bench_sgemm(&s0, 0, 1, 0, 96, 64, 2, 2, 1), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("M, N, K"), std::string::npos);
}
