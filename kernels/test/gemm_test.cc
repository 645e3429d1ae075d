// gemm_test.cc — the engine GEMM (a tile grid over threads), the portable fallback GEMM, and
// the library dispatch, against a float64 reference for every transpose case; and the grid's
// promise that it depends on the shape alone, so the bits do not depend on the thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
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

namespace {

int64_t tile_count(const sieve::cpu::GemmTiles& t, int64_t M, int64_t N) {
  return ((M + t.rows - 1) / t.rows) * ((N + t.cols - 1) / t.cols);
}

}  // namespace

TEST(Gemm, TileGridDependsOnTheShapeOnly) {
  const int64_t shapes[][3] = {{4096, 768, 768},  {4096, 768, 3072}, {4096, 3072, 768}, {3072, 768, 4096},
                               {768, 768, 4096},  {4096, 2304, 768}, {4096, 64, 64},    {192, 64, 4096},
                               {64, 64, 4096},    {256, 50257, 768}, {50257, 768, 256}, {256, 768, 50257},
                               {1031, 517, 77},   {5, 7, 3},         {1, 5000, 500},    {16384, 4096, 4096}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], N = s[1], K = s[2];
    sieve::cpu::GemmTiles t1, t16;
    {
      sieve::cpu::ThreadScope one(1);
      t1 = sieve::cpu::gemm_tiles(M, N, K);
    }
    {
      sieve::cpu::ThreadScope sixteen(16);
      t16 = sieve::cpu::gemm_tiles(M, N, K);
    }
    const std::string at = "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
    EXPECT_EQ(t1.rows, t16.rows) << at;
    EXPECT_EQ(t1.cols, t16.cols) << at;
    EXPECT_TRUE(t1.rows >= 1 && t1.rows <= M && (t1.rows == M || t1.rows % 16 == 0)) << at << " rows " << t1.rows;
    EXPECT_TRUE(t1.cols >= 1 && t1.cols <= N && (t1.cols == N || t1.cols % 16 == 0)) << at << " cols " << t1.cols;
    EXPECT_LE(tile_count(t1, M, N), 64) << at;
  }
  // small products stay whole; two cores always share a product that has a side of 64
  EXPECT_EQ(tile_count(sieve::cpu::gemm_tiles(5, 7, 3), 5, 7), 1);
  EXPECT_EQ(tile_count(sieve::cpu::gemm_tiles(64, 64, 4096), 64, 64), 2);
  // the model's products (N = B T = 4096 tokens, C = 768, H = 3072) feed 16 threads, in tiles of at
  // least 384 x 384 where the token side allows it
  for (const auto& s : {std::vector<int64_t>{4096, 768, 768}, {4096, 3072, 768}, {4096, 768, 3072}, {3072, 768, 4096}}) {
    const sieve::cpu::GemmTiles t = sieve::cpu::gemm_tiles(s[0], s[1], s[2]);
    EXPECT_GE(tile_count(t, s[0], s[1]), 16) << s[0] << "x" << s[1];
    EXPECT_GE(std::min(t.rows, t.cols), 384) << s[0] << "x" << s[1];
  }
  EXPECT_GE(tile_count(sieve::cpu::gemm_tiles(768, 768, 4096), 768, 768), 16);
  EXPECT_GE(tile_count(sieve::cpu::gemm_tiles(256, 50257, 768), 256, 50257), 16);
}

namespace {

// C = alpha op(A) op(B) + beta C0 in double, at entry (i, j)
double reference_at(const Case& c, const std::vector<float>& A, const std::vector<float>& B,
                    const std::vector<float>& C0, float alpha, float beta, int64_t i, int64_t j) {
  const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
  double s = 0;
  for (int64_t k = 0; k < c.K; k++)
    s += (double)(c.ta ? A[k * lda + i] : A[i * lda + k]) * (double)(c.tb ? B[j * ldb + k] : B[k * ldb + j]);
  return alpha * s + beta * (double)C0[i * c.N + j];
}

// Rows (or columns) to check against the reference: both sides of every tile edge, the ends, and
// a few in between.
std::vector<int64_t> probe(int64_t n, int64_t tile) {
  std::set<int64_t> at = {0, n - 1, n / 2, n / 3};
  for (int64_t e = tile; e < n; e += tile) at.insert({e - 1, e});
  return std::vector<int64_t>(at.begin(), at.end());
}

}  // namespace

TEST(Gemm, TileGridIsBitIdenticalAcrossThreadCountsAndMatchesReference) {
  struct Shape {
    Case c;
    float beta;
  };
  const Shape shapes[] = {
      // GPT-2 products at 4096 tokens, widths 768 and 384: forward, input gradient, weight gradient (+=)
      {{false, true, 4096, 768, 768}, 0.0f},
      {{false, false, 4096, 384, 384}, 0.0f},
      {{true, false, 768, 768, 4096}, 1.0f},
      {{false, true, 4096, 1152, 384}, 0.0f},
      {{true, false, 384, 384, 4096}, 1.0f},
      // LM head chunks at GPT-2's vocabulary (K cut short: the grid does not depend on it here)
      {{false, true, 256, 50257, 64}, 0.0f},
      {{true, false, 50257, 128, 256}, 1.0f},
      {{false, false, 256, 768, 4099}, 0.0f},
      // odd shapes, every transpose case
      {{false, false, 1031, 517, 77}, 1.0f},
      {{true, true, 4097, 771, 65}, 0.0f},
      {{true, false, 33, 2049, 129}, 1.0f},
      {{false, true, 600, 40, 5000}, 0.0f},
      {{false, false, 2000, 3, 700}, 1.0f},
      {{true, true, 1, 5000, 500}, 1.0f},
      {{false, true, 97, 61, 1}, 1.0f},
  };
  const float alpha = 0.75f;
  for (const Shape& s : shapes) {
    const Case& c = s.c;
    const std::string at = "ta=" + std::to_string(c.ta) + " tb=" + std::to_string(c.tb) + " M=" + std::to_string(c.M) +
                           " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K);
    auto A = randn(c.M * c.K, 11), B = randn(c.K * c.N, 12), C0 = randn(c.M * c.N, 13);
    const int64_t lda = c.ta ? c.M : c.K, ldb = c.tb ? c.K : c.N;
    std::vector<float> first;
    for (int threads : {1, 2, 3, 8, 16}) {
      sieve::cpu::ThreadScope scope(threads);
      auto Cm = C0;
      sieve::cpu::sgemm(c.ta, c.tb, c.M, c.N, c.K, alpha, A.data(), lda, B.data(), ldb, s.beta, Cm.data(), c.N, nullptr);
      if (first.empty()) {
        first = Cm;
        continue;
      }
      EXPECT_TRUE(same_bits(first.data(), Cm.data(), c.M * c.N)) << at << ": " << threads << " threads vs 1";
    }
    const sieve::cpu::GemmTiles t = sieve::cpu::gemm_tiles(c.M, c.N, c.K);
    std::vector<float> got;
    std::vector<double> want;
    for (int64_t i : probe(c.M, t.rows))
      for (int64_t j : probe(c.N, t.cols)) {
        got.push_back(first[i * c.N + j]);
        want.push_back(reference_at(c, A, B, C0, alpha, s.beta, i, j));
      }
    // float32 dot products of up to 5000 terms against the largest entry: well under 2e-5
    EXPECT_TRUE(close(got, want, 2e-5, "tiled sgemm")) << at;
  }
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
