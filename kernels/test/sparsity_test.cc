// sparsity_test.cc — the op-level 2:4 kernels of sieve.h against METHODS.md §1–§5: every
// worked example and invariant of the magnitude and transposable masks, S-STE's threshold and
// scale, MVUE, flips and counts, CAST's weight scaling and SLoRB's mean initialisation.
// (The update rules AST and AdamS are in rules_test.cc; the model-level calls in
// sparse_model_test.cc.)
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "sieve.h"
#include "sparsity.h"
#include "util.h"

using namespace testutil;

namespace {

std::vector<float> mask_magnitude(const std::vector<float>& w, int64_t R, int64_t K) {
  std::vector<float> m(w.size(), -1.0f);
  EXPECT_EQ(sieve_mask24_magnitude(m.data(), w.data(), R, K), SIEVE_OK) << sieve_last_error();
  return m;
}

std::vector<float> mask_transposable(const std::vector<float>& w, int64_t R, int64_t K) {
  std::vector<float> m(w.size(), -1.0f);
  EXPECT_EQ(sieve_mask24_transposable(m.data(), w.data(), R, K), SIEVE_OK) << sieve_last_error();
  return m;
}

std::vector<float> sste(const std::vector<float>& w) {
  std::vector<float> out(w.size());
  EXPECT_EQ(sieve_sste_threshold(out.data(), w.data(), 1, (int64_t)w.size()), SIEVE_OK) << sieve_last_error();
  return out;
}

bool has_error(const char* text) { return std::string(sieve_last_error()).find(text) != std::string::npos; }

// Runs f with `threads` default threads (the op-level functions use the default), then
// restores the previous default.
template <class F>
void with_threads(int threads, F f) {
  sieve_backend_info info{};
  sieve_backend(SIEVE_DEVICE_CPU, &info);
  sieve_set_default_threads(threads);
  f();
  sieve_set_default_threads(info.default_threads);
}

// All 4x4 0/1 patterns with two ones per row and per column, as 16-bit masks (bit 4 r + c),
// in the order sieve.h documents: lexicographic in the rows' pairs of columns.
std::vector<uint16_t> brute_force_patterns() {
  const int pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
  std::vector<uint16_t> out;
  for (int a = 0; a < 6; a++)
    for (int b = 0; b < 6; b++)
      for (int c = 0; c < 6; c++)
        for (int d = 0; d < 6; d++) {
          const int rows[4] = {a, b, c, d};
          int cols[4] = {0, 0, 0, 0};
          uint16_t bits = 0;
          for (int r = 0; r < 4; r++)
            for (int e = 0; e < 2; e++) cols[pairs[rows[r]][e]]++, bits |= (uint16_t)(1u << (4 * r + pairs[rows[r]][e]));
          if (cols[0] == 2 && cols[1] == 2 && cols[2] == 2 && cols[3] == 2) out.push_back(bits);
        }
  return out;
}

// The block (bi, bj) of a mask as 16 bits.
uint16_t block_bits(const std::vector<float>& m, int64_t K, int64_t bi, int64_t bj) {
  uint16_t bits = 0;
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++)
      if (m[(4 * bi + r) * K + 4 * bj + c] == 1.0f) bits |= (uint16_t)(1u << (4 * r + c));
  return bits;
}

double block_score(const std::vector<float>& w, int64_t K, int64_t bi, int64_t bj, uint16_t bits) {
  double s = 0;
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++)
      if ((bits >> (4 * r + c)) & 1u) s += std::fabs((double)w[(4 * bi + r) * K + 4 * bj + c]);
  return s;
}

double retained(const std::vector<float>& w, const std::vector<float>& m) {
  double s = 0;
  for (size_t i = 0; i < w.size(); i++) s += m[i] * std::fabs((double)w[i]);
  return s;
}

// Every group of 4 along K (and along R when both) holds exactly 2 ones.
void expect_two_of_four(const std::vector<float>& m, int64_t R, int64_t K, bool both) {
  for (int64_t r = 0; r < R; r++)
    for (int64_t g = 0; g < K / 4; g++) {
      float s = 0;
      for (int c = 0; c < 4; c++) s += m[r * K + 4 * g + c];
      ASSERT_EQ(s, 2.0f) << "row " << r << " group " << g;
    }
  if (!both) return;
  for (int64_t c = 0; c < K; c++)
    for (int64_t g = 0; g < R / 4; g++) {
      float s = 0;
      for (int r = 0; r < 4; r++) s += m[(4 * g + r) * K + c];
      ASSERT_EQ(s, 2.0f) << "column " << c << " group " << g;
    }
}

}  // namespace

// ---------------------------------------------------------------- magnitude mask (METHODS 1.3)

TEST(Mask24Magnitude, WorkedExample) {
  EXPECT_EQ(mask_magnitude({0.9f, -0.1f, 0.4f, -0.7f}, 1, 4), (std::vector<float>{1, 0, 0, 1}));
}

TEST(Mask24Magnitude, TiesGoToTheHigherIndex) {
  EXPECT_EQ(mask_magnitude({1, 1, 1, 1}, 1, 4), (std::vector<float>{0, 0, 1, 1})) << "all equal: keep 2 and 3";
  EXPECT_EQ(mask_magnitude({2, 1, 1, 0}, 1, 4), (std::vector<float>{1, 0, 1, 0})) << "|w| = (2,1,1,0): keep 0 and 2";
  EXPECT_EQ(mask_magnitude({-2, 1, -1, 0}, 1, 4), (std::vector<float>{1, 0, 1, 0})) << "by magnitude, not sign";
  EXPECT_EQ(mask_magnitude({0, -0.0f, 0, -0.0f}, 1, 4), (std::vector<float>{0, 0, 1, 1})) << "-0 ties with 0";
}

// Over every group of small signed integers (many ties), the mask is the beats-at-least-2 rule.
TEST(Mask24Magnitude, ExhaustiveSmallIntegersFollowTheRule) {
  std::vector<float> w;
  for (int a = -2; a <= 2; a++)
    for (int b = -2; b <= 2; b++)
      for (int c = -2; c <= 2; c++)
        for (int d = -2; d <= 2; d++) w.insert(w.end(), {(float)a, (float)b, (float)c, (float)d});
  const int64_t groups = (int64_t)w.size() / 4;
  const std::vector<float> m = mask_magnitude(w, groups, 4);
  for (int64_t g = 0; g < groups; g++)
    for (int i = 0; i < 4; i++) {
      int wins = 0;
      for (int j = 0; j < 4; j++) {
        const float a = std::fabs(w[4 * g + i]), b = std::fabs(w[4 * g + j]);
        if (j != i && (a > b || (a == b && i > j))) wins++;
      }
      ASSERT_EQ(m[4 * g + i], wins >= 2 ? 1.0f : 0.0f) << "group " << g << " element " << i;
    }
}

TEST(Mask24Magnitude, ExactlyTwoPerGroupKeptDominatePrunedAndRepeatable) {
  const int64_t R = 48, K = 64;
  const auto w = randn(R * K, 1);
  const auto m = mask_magnitude(w, R, K);
  expect_two_of_four(m, R, K, false);
  for (int64_t g = 0; g < R * K / 4; g++) {
    float kept = INFINITY, pruned = 0;
    for (int i = 0; i < 4; i++) {
      const float a = std::fabs(w[4 * g + i]);
      if (m[4 * g + i] == 1.0f)
        kept = std::min(kept, a);
      else
        pruned = std::max(pruned, a);
    }
    ASSERT_GE(kept, pruned) << g;
  }
  EXPECT_TRUE(same_bits(m.data(), mask_magnitude(w, R, K).data(), R * K)) << "repeated calls give the same mask";
}

TEST(Mask24Magnitude, NaNRanksBelowEveryNumber) {
  EXPECT_EQ(mask_magnitude({NAN, 0.1f, 0.2f, 0.0f}, 1, 4), (std::vector<float>{0, 1, 1, 0}));
  EXPECT_EQ(mask_magnitude({NAN, 5.0f, NAN, NAN}, 1, 4), (std::vector<float>{0, 1, 0, 1}))
      << "one number left: it and the highest-index NaN";
  expect_two_of_four(mask_magnitude({NAN, NAN, NAN, NAN}, 1, 4), 1, 4, false);
}

TEST(Mask24Magnitude, RejectsShapesWithoutGroupsOfFour) {
  std::vector<float> w(12), m(12);
  EXPECT_EQ(sieve_mask24_magnitude(m.data(), w.data(), 2, 6), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("K must be a multiple of 4: got a [2, 6] matrix")) << sieve_last_error();
  EXPECT_EQ(sieve_mask24_magnitude(m.data(), nullptr, 3, 4), SIEVE_E_INVALID_ARGUMENT);
}

// ---------------------------------------------------------------- transposable mask (METHODS 2.6)

TEST(Mask24Transposable, PatternTableIsTheNinetyInTheDocumentedOrder) {
  const std::vector<uint16_t> want = brute_force_patterns();
  ASSERT_EQ(want.size(), 90u);
  const uint16_t* got = sieve::cpu::transposable_patterns();
  EXPECT_EQ(std::vector<uint16_t>(got, got + 90), want);
  EXPECT_EQ(std::set<uint16_t>(want.begin(), want.end()).size(), 90u);
  // the set is closed under transposition
  for (uint16_t p : want) {
    uint16_t t = 0;
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 4; c++)
        if ((p >> (4 * r + c)) & 1u) t |= (uint16_t)(1u << (4 * c + r));
    EXPECT_TRUE(std::count(want.begin(), want.end(), t)) << p;
  }
}

TEST(Mask24Transposable, WorkedExample) {
  const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f,  //
                                0.2f, 0.8f, -0.6f, 0.1f,   //
                                -0.5f, 0.3f, 0.05f, 0.9f,  //
                                0.3f, -0.7f, 0.2f, -0.4f};
  const auto m = mask_transposable(w, 4, 4);
  EXPECT_EQ(m, (std::vector<float>{1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0}));
  EXPECT_NEAR(retained(w, m), 5.3, 1e-6);
  const auto row = mask_magnitude(w, 4, 4);
  EXPECT_NEAR(retained(w, row), 5.5, 1e-6) << "row-only keeps more";
  std::vector<float> cols(4, 0);
  for (int i = 0; i < 16; i++) cols[i % 4] += row[i];
  EXPECT_EQ(cols, (std::vector<float>{2, 2, 1, 3})) << "and is not transposable";
}

// The chosen pattern of every block has the largest score of the 90, computed in double.
TEST(Mask24Transposable, OptimalPerBlockAgainstBruteForce) {
  const int64_t R = 32, K = 64;
  const auto w = randn(R * K, 2);
  const auto m = mask_transposable(w, R, K);
  expect_two_of_four(m, R, K, true);
  const auto patterns = brute_force_patterns();
  for (int64_t bi = 0; bi < R / 4; bi++)
    for (int64_t bj = 0; bj < K / 4; bj++) {
      double best = -1;
      for (uint16_t p : patterns) best = std::max(best, block_score(w, K, bi, bj, p));
      const uint16_t got = block_bits(m, K, bi, bj);
      ASSERT_TRUE(std::count(patterns.begin(), patterns.end(), got)) << "not one of the 90";
      ASSERT_NEAR(block_score(w, K, bi, bj, got), best, 1e-6 * best) << bi << "," << bj;
    }
}

// Small integers make many ties, and every score is exact in float: the choice must be the
// lowest-index pattern of those with the largest score.
TEST(Mask24Transposable, TiesGoToTheLowestPatternIndex) {
  const int64_t R = 16, K = 64;
  std::vector<float> w = randn(R * K, 3);
  for (float& x : w) x = std::round(x);  // mostly -2..2
  const auto m = mask_transposable(w, R, K);
  const auto patterns = brute_force_patterns();
  for (int64_t bi = 0; bi < R / 4; bi++)
    for (int64_t bj = 0; bj < K / 4; bj++) {
      double best = -1;
      size_t first = 0;
      for (size_t k = 0; k < patterns.size(); k++) {
        const double s = block_score(w, K, bi, bj, patterns[k]);
        if (s > best) best = s, first = k;
      }
      ASSERT_EQ(block_bits(m, K, bi, bj), patterns[first]) << bi << "," << bj;
    }
  // all equal: every pattern ties, pattern 0 wins
  const auto flat = mask_transposable(std::vector<float>(16, 1.0f), 4, 4);
  EXPECT_EQ(block_bits(flat, 4, 0, 0), patterns[0]);
}

TEST(Mask24Transposable, RetainsNoMoreThanRowOnlyAndCommutesWithTranspose) {
  const int64_t R = 64, K = 64;
  const auto w = randn(R * K, 4);
  const auto m = mask_transposable(w, R, K);
  EXPECT_LE(retained(w, m), retained(w, mask_magnitude(w, R, K)) + 1e-9);
  std::vector<float> wt(R * K);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < K; c++) wt[c * R + r] = w[r * K + c];
  const auto mt = mask_transposable(wt, K, R);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < K; c++) ASSERT_EQ(mt[c * R + r], m[r * K + c]) << r << "," << c;
}

// NaN ranks as magnitude -1 and infinity as the largest: the mask stays exactly 2:4 both ways
// and is still the best pattern by those ranks.
TEST(Mask24Transposable, NaNAndInfinityStillGiveAValidOptimalMask) {
  std::vector<float> w = randn(16 * 16, 5);
  w[3] = NAN;
  w[40] = INFINITY;
  w[41] = -INFINITY;
  w[100] = NAN;
  w[101] = NAN;
  const auto m = mask_transposable(w, 16, 16);
  expect_two_of_four(m, 16, 16, true);
  const auto patterns = brute_force_patterns();
  auto score = [&](int64_t bi, int64_t bj, uint16_t bits) {
    double s = 0;
    for (int r = 0; r < 4; r++)
      for (int c = 0; c < 4; c++)
        if ((bits >> (4 * r + c)) & 1u) {
          const float x = w[(4 * bi + r) * 16 + 4 * bj + c];
          s += std::isnan(x) ? -1.0 : std::fabs((double)x);
        }
    return s;
  };
  for (int64_t bi = 0; bi < 4; bi++)
    for (int64_t bj = 0; bj < 4; bj++) {
      double best = -INFINITY;
      for (uint16_t p : patterns) best = std::max(best, score(bi, bj, p));
      const double got = score(bi, bj, block_bits(m, 16, bi, bj));
      if (std::isinf(best))
        ASSERT_TRUE(std::isinf(got)) << bi << "," << bj;
      else
        ASSERT_NEAR(got, best, 1e-6 * std::fabs(best)) << bi << "," << bj;
    }
}

TEST(Mask24Transposable, RejectsRowsNotInFours) {
  std::vector<float> w(24), m(24);
  EXPECT_EQ(sieve_mask24_transposable(m.data(), w.data(), 6, 4), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("R must be a multiple of 4: got a [6, 4] matrix")) << sieve_last_error();
}

TEST(Mask24Transposable, ThreadCountDoesNotChangeTheMaskAndItIsFast) {
  const int64_t R = 1024, K = 1024;
  const auto w = randn(R * K, 6);
  std::vector<float> one, two;
  with_threads(1, [&] { one = mask_transposable(w, R, K); });
  const auto t0 = std::chrono::steady_clock::now();
  with_threads(2, [&] { two = mask_transposable(w, R, K); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(same_bits(one.data(), two.data(), R * K));
  std::printf("  transposable 2:4 mask of a 1024x1024 matrix: %.1f ms (%.2f ns per weight)\n", s * 1e3, s * 1e9 / (R * K));
  EXPECT_LT(s, 2.0);
}

// ---------------------------------------------------------------- S-STE (METHODS 3)

TEST(SsteThreshold, WorkedExample) {
  const auto s = sste({0.9f, -0.1f, 0.4f, -0.7f});
  EXPECT_FLOAT_EQ(s[0], 0.5f);
  EXPECT_EQ(s[1], 0.0f);
  EXPECT_EQ(s[2], 0.0f);
  EXPECT_FLOAT_EQ(s[3], -0.3f);
  double beta = 0;
  const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f};
  SIEVE_OK_OR_FAIL(sieve_sste_beta(&beta, w.data(), 1, 4));
  EXPECT_NEAR(beta, 0.66 / 0.34, 1e-6);
  EXPECT_NEAR(beta, 1.9412, 5e-5);
  // W~ = beta S(w) = [0.9706, 0, 0, -0.5824]
  std::vector<float> wt(4);
  const float b = (float)beta;
  SIEVE_OK_OR_FAIL(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SSTE, &b, 1, 4));
  EXPECT_NEAR(wt[0], 0.9706, 5e-5);
  EXPECT_EQ(wt[1], 0.0f);
  EXPECT_EQ(wt[2], 0.0f);
  EXPECT_NEAR(wt[3], -0.5824, 5e-5);
}

// t from the branch-free formula is the sorted 2nd smallest |a|: the two largest come out as
// |a| - t (the same float subtraction), the two smallest as 0; exactly 2 nonzeros.
TEST(SsteThreshold, ThresholdIsTheSortedSecondSmallest) {
  const int64_t n = 4 * 100000;
  const auto w = randn(n, 7);
  const auto s = sste(w);
  for (int64_t g = 0; g < n / 4; g++) {
    std::array<float, 4> mag;
    for (int i = 0; i < 4; i++) mag[i] = std::fabs(w[4 * g + i]);
    std::array<float, 4> sorted = mag;
    std::sort(sorted.begin(), sorted.end());
    const float t = sorted[1];
    int nonzero = 0;
    for (int i = 0; i < 4; i++) {
      const float want = mag[i] > t ? mag[i] - t : 0.0f;
      ASSERT_EQ(std::fabs(s[4 * g + i]), want) << g;
      if (want != 0.0f) {
        ASSERT_EQ(std::signbit(s[4 * g + i]), std::signbit(w[4 * g + i])) << "sign kept";
      }
      nonzero += s[4 * g + i] != 0.0f;
    }
    if (sorted[0] < sorted[1] && sorted[1] < sorted[2] && sorted[2] < sorted[3]) {
      ASSERT_EQ(nonzero, 2) << g;
    }
  }
}

TEST(SsteThreshold, AtMostTwoNonzerosAndTiesShrinkToZero) {
  // the 2nd and 3rd magnitudes tie: the kept one of them is 0 too
  EXPECT_EQ(sste({1, -2, 2, 3}), (std::vector<float>{0, -0.0f, 0, 1}));
  EXPECT_EQ(sste({5, 5, 5, 5}), (std::vector<float>{0, 0, 0, 0}));
  std::vector<float> w = randn(4 * 1000, 8);
  for (float& x : w) x = std::round(x * 2) / 2;  // many ties
  const auto s = sste(w);
  for (int64_t g = 0; g < 1000; g++) {
    int nonzero = 0;
    for (int i = 0; i < 4; i++) nonzero += s[4 * g + i] != 0.0f;
    ASSERT_LE(nonzero, 2) << g;
  }
}

// Continuity: ||S(a + d) - S(a)||_inf <= 2 ||d||_inf (plus float rounding).
TEST(SsteThreshold, IsTwoLipschitzInTheMaxNorm) {
  const int64_t n = 4 * 20000;
  const auto a = randn(n, 9);
  for (const float scale : {1e-1f, 1e-3f}) {
    const auto d = randn(n, 10, scale);
    std::vector<float> ad(n);
    for (int64_t i = 0; i < n; i++) ad[i] = a[i] + d[i];
    const auto s0 = sste(a), s1 = sste(ad);
    for (int64_t g = 0; g < n / 4; g++) {
      double dmax = 0, smax = 0;
      for (int i = 0; i < 4; i++) {
        dmax = std::max(dmax, std::fabs((double)ad[4 * g + i] - a[4 * g + i]));
        smax = std::max(smax, std::fabs((double)s1[4 * g + i] - s0[4 * g + i]));
      }
      ASSERT_LE(smax, 2 * dmax + 2e-6) << g;
    }
  }
  // METHODS 3.7: move w2 from 0.4 towards 0.7; the kept entry at index 3 goes to 0 with no jump
  float prev = sste({0.9f, -0.1f, 0.4f, -0.7f})[3];
  for (int k = 1; k <= 300; k++) {
    const float w2 = 0.4f + 0.3f * (float)k / 300.0f;
    const float now = sste({0.9f, -0.1f, w2, -0.7f})[3];
    ASSERT_LE(std::fabs(now - prev), 2 * 0.3f / 300.0f + 1e-6f) << k;
    prev = now;
  }
  EXPECT_EQ(prev, 0.0f);
}

TEST(SsteThreshold, NaNPoisonsItsGroupOnly) {
  const auto s = sste({0.1f, NAN, 0.3f, 0.4f, 0.9f, -0.1f, 0.4f, -0.7f});
  for (int i = 0; i < 4; i++) EXPECT_TRUE(std::isnan(s[i])) << i;
  EXPECT_FLOAT_EQ(s[4], 0.5f);
}

TEST(SsteBeta, MatchesTheClosedFormIndependentOfThreads) {
  const int64_t R = 96, K = 128;
  const auto w = randn(R * K, 11);
  const auto s = sste(w);
  double ws = 0, ss = 0;
  for (int64_t i = 0; i < R * K; i++) ws += (double)w[i] * s[i], ss += (double)s[i] * s[i];
  double one = 0, two = 0;
  with_threads(1, [&] { SIEVE_OK_OR_FAIL(sieve_sste_beta(&one, w.data(), R, K)); });
  with_threads(2, [&] { SIEVE_OK_OR_FAIL(sieve_sste_beta(&two, w.data(), R, K)); });
  EXPECT_EQ(one, two) << "a fixed order of summation";
  EXPECT_NEAR(one, ws / ss, 1e-12 * (ws / ss));
  EXPECT_GT(one, 1.0) << "soft thresholding shrinks, beta scales back up";
  double b = 0;
  std::vector<float> flat(64, 0.25f);
  EXPECT_EQ(sieve_sste_beta(&b, flat.data(), 4, 16), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("S(w) is all zero")) << sieve_last_error();
  EXPECT_EQ(sieve_sste_beta(&b, flat.data(), 8, 8 - 2), SIEVE_E_INVALID_ARGUMENT);
}

TEST(SsteTransform, ForwardIsBetaTimesSAndTheBackwardIsStraightThrough) {
  const auto w = randn(64, 12);
  const float beta = 1.7f;
  std::vector<float> wt(64), dw(64, 1.0f);
  SIEVE_OK_OR_FAIL(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SSTE, &beta, 1, 64));
  const auto s = sste(w);
  for (int i = 0; i < 64; i++) ASSERT_EQ(wt[i], beta * s[i]) << i;
  const auto dwt = randn(64, 13);
  SIEVE_OK_OR_FAIL(sieve_transform_backward(dw.data(), dwt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SSTE, &beta, 1, 64));
  for (int i = 0; i < 64; i++) ASSERT_EQ(dw[i], 1.0f + dwt[i]) << "dW += dW~: no beta, no mask, no Jacobian";
  EXPECT_EQ(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SSTE, &beta, 1, 62),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("n = 62 is not a multiple of 4")) << sieve_last_error();
  const float bad = 0.0f;
  EXPECT_EQ(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SSTE, &bad, 1, 64),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("sste beta")) << sieve_last_error();
  EXPECT_EQ(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_SCALE, nullptr, 0, 64),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("sieve_weight_scale_forward")) << sieve_last_error();
}

// ---------------------------------------------------------------- MVUE (METHODS 2.7)

namespace {

// The estimator's law in double, from the formula: a_i = |x_i| + eps, P(i1) = a_i1 / S,
// P(i2 | i1) = a_i2 / (S - a_i1), inclusion p_i, kept value x_i / p_i.
struct MvueLaw {
  double a[4], S, p[4];
  explicit MvueLaw(const std::array<double, 4>& x) {
    S = 0;
    for (int i = 0; i < 4; i++) S += (a[i] = std::fabs(x[i]) + 1.1920928955078125e-7);
    for (int i = 0; i < 4; i++) {
      p[i] = a[i] / S;
      for (int j = 0; j < 4; j++)
        if (j != i) p[i] += a[i] * (a[j] / S) / (S - a[j]);
    }
  }
  double draw(int i1, int i2) const { return a[i1] / S * a[i2] / (S - a[i1]); }
};

}  // namespace

TEST(Mvue24, WorkedExampleInclusionProbabilitiesAndValues) {
  const MvueLaw law({0.9, -0.1, 0.4, -0.7});
  const double p[4] = {0.7651, 0.1183, 0.4381, 0.6784}, kept[4] = {1.1763, -0.8450, 0.9130, -1.0318};
  const double x[4] = {0.9, -0.1, 0.4, -0.7};
  double sum = 0;
  for (int i = 0; i < 4; i++) {
    EXPECT_NEAR(law.p[i], p[i], 5e-5) << i;
    EXPECT_NEAR(x[i] / law.p[i], kept[i], 5e-5) << i;
    sum += law.p[i];
  }
  EXPECT_NEAR(sum, 2.0, 1e-12);
  // the kernel's own probabilities (single precision) agree with the formula in double
  const float xf[4] = {0.9f, -0.1f, 0.4f, -0.7f};
  float pk[4];
  sieve::cpu::mvue24_probabilities(pk, xf);
  const MvueLaw lf({0.9f, -0.1f, 0.4f, -0.7f});
  for (int i = 0; i < 4; i++) EXPECT_NEAR(pk[i], lf.p[i], 4e-7 * lf.p[i]) << i;
}

// Single precision stays accurate where one entry dominates (S - a_j would cancel: the kernel sums
// the other three instead) and across float's range, up to magnitudes whose S overflows.
TEST(Mvue24, ProbabilitiesHoldWhenOneEntryDominatesAndAtExtremeScales) {
  const std::vector<std::array<float, 4>> groups = {{1.0f, 0.0f, 0.0f, 0.0f},   {3.0f, 1e-7f, -2e-7f, 0.0f},
                                                    {-1e30f, 1.0f, 0.0f, 2e29f}, {1e-30f, 0.0f, 0.0f, 0.0f},
                                                    {1e37f, -1e37f, 3e36f, 0.0f}};
  for (const auto& x : groups) {
    float pk[4];
    sieve::cpu::mvue24_probabilities(pk, x.data());
    const MvueLaw law({x[0], x[1], x[2], x[3]});
    double sum = 0;
    for (int i = 0; i < 4; i++) {
      // relative, and absolute where p is denormal (the zero entry beside 1e37)
      EXPECT_NEAR(pk[i], law.p[i], 2e-6 * law.p[i] + 0x1.0p-149) << x[0] << " " << i;
      sum += pk[i];
    }
    EXPECT_NEAR(sum, 2.0, 1e-6) << x[0];
  }
}

// E[out] = x, summing the 12 ordered draws with their probabilities (Horvitz-Thompson).
TEST(Mvue24, EnumeratingTheTwelveOrderedDrawsGivesBackX) {
  std::vector<std::array<double, 4>> groups = {{0.9, -0.1, 0.4, -0.7}, {0, 0, 0, 0}, {1e-9, 0, -3, 0}, {5, 5, 5, 5}};
  const auto r = randn(4 * 50, 14);
  for (int g = 0; g < 50; g++) groups.push_back({r[4 * g], r[4 * g + 1], r[4 * g + 2], r[4 * g + 3]});
  for (const auto& x : groups) {
    const MvueLaw law(x);
    double mean[4] = {0, 0, 0, 0}, total = 0;
    for (int i1 = 0; i1 < 4; i1++)
      for (int i2 = 0; i2 < 4; i2++) {
        if (i2 == i1) continue;
        const double pr = law.draw(i1, i2);
        total += pr;
        mean[i1] += pr * x[i1] / law.p[i1];
        mean[i2] += pr * x[i2] / law.p[i2];
      }
    EXPECT_NEAR(total, 1.0, 1e-9);  // S - a_j cancels when one entry dominates: ~1e-10 of rounding
    for (int i = 0; i < 4; i++) EXPECT_NEAR(mean[i], x[i], 1e-6 * std::max(1.0, std::fabs(x[i]))) << i;
  }
}

// Every group of the kernel's output keeps exactly 2 entries, each the HT value x / p of the
// formula with its sign.
TEST(Mvue24, OutputsAreTwoHorvitzThompsonValuesPerGroup) {
  const int64_t N = 64, OC = 24;
  const auto g = randn(N * OC, 15);
  std::vector<float> out(N * OC);
  SIEVE_OK_OR_FAIL(sieve_mvue24(out.data(), g.data(), N, OC, 42));
  for (int64_t q = 0; q < N / 4; q++)
    for (int64_t d = 0; d < OC; d++) {
      std::array<double, 4> x;
      for (int i = 0; i < 4; i++) x[i] = g[(4 * q + i) * OC + d];
      const MvueLaw law(x);
      int nonzero = 0;
      for (int i = 0; i < 4; i++) {
        const float y = out[(4 * q + i) * OC + d];
        if (y == 0.0f) continue;
        nonzero++;
        ASSERT_NEAR(y, x[i] / law.p[i], 1e-6 * std::fabs(x[i] / law.p[i])) << q << "," << d;  // a few float roundings
        ASSERT_EQ(std::signbit(y), std::signbit((float)x[i])) << "sign kept";
      }
      ASSERT_EQ(nonzero, 2) << q << "," << d;
    }
}

// 1e5 independent groups (one column, every group the worked example): the mean of each entry
// is within 3 sigma of x, and each inclusion frequency within 3 sigma of p.
TEST(Mvue24, MonteCarloMeanIsWithinThreeSigma) {
  const int64_t M = 100000, N = 4 * M;
  const float x[4] = {0.9f, -0.1f, 0.4f, -0.7f};
  std::vector<float> g(N), out(N);
  for (int64_t r = 0; r < N; r++) g[r] = x[r % 4];
  SIEVE_OK_OR_FAIL(sieve_mvue24(out.data(), g.data(), N, 1, 7));
  const MvueLaw law({x[0], x[1], x[2], x[3]});
  for (int i = 0; i < 4; i++) {
    double sum = 0;
    int64_t kept = 0;
    for (int64_t q = 0; q < M; q++) {
      sum += out[4 * q + i];
      kept += out[4 * q + i] != 0.0f;
    }
    const double mean = sum / M, xi = x[i];
    const double sigma = std::sqrt((xi * xi / law.p[i] - xi * xi) / M);  // Var = x^2 / p - x^2
    EXPECT_NEAR(mean, xi, 3 * sigma) << i;
    const double freq = (double)kept / M, fs = std::sqrt(law.p[i] * (1 - law.p[i]) / M);
    EXPECT_NEAR(freq, law.p[i], 3 * fs) << i;
  }
}

TEST(Mvue24, ZeroGroupsStayZeroPartialGroupsAndNonFiniteGroupsPassThrough) {
  const int64_t N = 10, OC = 3;
  std::vector<float> g = randn(N * OC, 16);
  for (int i = 0; i < 4 * OC; i++) g[i] = 0.0f;  // group 0: all zero
  g[4 * OC + 1] = NAN;                          // group 1, column 1
  g[4 * OC + 2] = 3e38f;                        // group 1, column 2: S overflows single precision
  g[5 * OC + 2] = -2e38f;
  std::vector<float> out(N * OC, 99.0f);
  SIEVE_OK_OR_FAIL(sieve_mvue24(out.data(), g.data(), N, OC, 3));
  for (int i = 0; i < 4 * OC; i++) EXPECT_EQ(out[i], 0.0f) << i;
  for (int r = 4; r < 8; r++)
    for (int d : {1, 2}) {
      const float a = out[r * OC + d], b = g[r * OC + d];
      EXPECT_TRUE(same_bits(&a, &b, 1)) << "a group holding NaN or too large to sum is copied, row " << r << " column " << d;
    }
  int kept = 0;
  for (int r = 4; r < 8; r++) kept += out[r * OC] != 0.0f;
  EXPECT_EQ(kept, 2) << "column 0 of group 1 is estimated";
  for (int i = 8 * OC; i < N * OC; i++) EXPECT_EQ(out[i], g[i]) << "rows 8 and 9 (N % 4) are copied";
}

TEST(Mvue24, SameSeedSameBitsWhateverTheThreads) {
  const int64_t N = 256, OC = 96;
  const auto g = randn(N * OC, 17);
  std::vector<float> a(N * OC), b(N * OC), c(N * OC);
  with_threads(1, [&] { SIEVE_OK_OR_FAIL(sieve_mvue24(a.data(), g.data(), N, OC, 5)); });
  with_threads(2, [&] { SIEVE_OK_OR_FAIL(sieve_mvue24(b.data(), g.data(), N, OC, 5)); });
  SIEVE_OK_OR_FAIL(sieve_mvue24(c.data(), g.data(), N, OC, 6));
  EXPECT_TRUE(same_bits(a.data(), b.data(), N * OC));
  EXPECT_FALSE(same_bits(a.data(), c.data(), N * OC)) << "another seed, other draws";
}

// ---------------------------------------------------------------- flips and counts (METHODS 2.3)

TEST(MaskFlips, CountChangedEntriesEvenPerGroup) {
  const std::vector<float> a = {1, 0, 0, 1}, b = {1, 0, 1, 0};
  int64_t flips = -1;
  SIEVE_OK_OR_FAIL(sieve_mask_flips(&flips, a.data(), b.data(), 4));
  EXPECT_EQ(flips, 2);
  EXPECT_EQ((double)flips / 4, 0.5) << "METHODS 2.3: r = 0.5 for that group";
  const int64_t R = 32, K = 64;
  const auto w = randn(R * K, 18), d = randn(R * K, 19, 0.3f);
  std::vector<float> w2(R * K);
  for (int64_t i = 0; i < R * K; i++) w2[i] = w[i] + d[i];
  for (const bool transposable : {false, true}) {
    const auto m1 = transposable ? mask_transposable(w, R, K) : mask_magnitude(w, R, K);
    const auto m2 = transposable ? mask_transposable(w2, R, K) : mask_magnitude(w2, R, K);
    SIEVE_OK_OR_FAIL(sieve_mask_flips(&flips, m1.data(), m1.data(), R * K));
    EXPECT_EQ(flips, 0) << "unchanged weights: no flips";
    SIEVE_OK_OR_FAIL(sieve_mask_flips(&flips, m1.data(), m2.data(), R * K));
    EXPECT_GT(flips, 0);
    EXPECT_LE(flips, R * K);
    EXPECT_EQ(flips % 2, 0);
    for (int64_t g = 0; g < R * K / 4; g++) {
      int64_t f = 0;
      SIEVE_OK_OR_FAIL(sieve_mask_flips(&f, m1.data() + 4 * g, m2.data() + 4 * g, 4));
      ASSERT_TRUE(f == 0 || f == 2 || f == 4) << g;
    }
  }
}

TEST(Count24, CountsGroupsWithMoreThanTwoNonzeros) {
  const std::vector<float> w = {1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, NAN, 0, 2, 3};
  int64_t n = -1;
  SIEVE_OK_OR_FAIL(sieve_count24_violations(&n, w.data(), 1, 20));
  EXPECT_EQ(n, 3);
  const int64_t R = 16, K = 32;
  auto x = randn(R * K, 20);
  SIEVE_OK_OR_FAIL(sieve_count24_violations(&n, x.data(), R, K));
  EXPECT_EQ(n, R * K / 4) << "dense: every group";
  const auto m = mask_magnitude(x, R, K);
  for (int64_t i = 0; i < R * K; i++) x[i] *= m[i];
  SIEVE_OK_OR_FAIL(sieve_count24_violations(&n, x.data(), R, K));
  EXPECT_EQ(n, 0);
}

// ---------------------------------------------------------------- CAST's weight scaling (METHODS 5.4)

TEST(WeightScale, ForwardAndBackwardFollowTheFormula) {
  const int64_t R = 3, K = 8, SG = 2;
  const auto w = randn(R * K, 21), A = randn(R * SG, 22), dwt = randn(R * K, 23);
  std::vector<float> wt(R * K), dw(R * K, 0.5f), dA(R * SG, 0.25f);
  SIEVE_OK_OR_FAIL(sieve_weight_scale_forward(wt.data(), w.data(), A.data(), R, K, SG));
  SIEVE_OK_OR_FAIL(sieve_weight_scale_backward(dw.data(), dA.data(), dwt.data(), w.data(), A.data(), R, K, SG));
  for (int64_t d = 0; d < R; d++) {
    double acc[2] = {0, 0};
    for (int64_t c = 0; c < K; c++) {
      const int64_t s = c / (K / SG);  // contiguous column blocks
      ASSERT_EQ(wt[d * K + c], A[d * SG + s] * w[d * K + c]);
      ASSERT_EQ(dw[d * K + c], 0.5f + A[d * SG + s] * dwt[d * K + c]);
      acc[s] += (double)dwt[d * K + c] * w[d * K + c];
    }
    for (int s = 0; s < 2; s++) EXPECT_NEAR(dA[d * SG + s], 0.25 + acc[s], 1e-6) << d << "," << s;
  }
  EXPECT_EQ(sieve_weight_scale_forward(wt.data(), w.data(), A.data(), R, K, 3), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("SG = 3 segments must divide K = 8")) << sieve_last_error();
}

// ---------------------------------------------------------------- SLoRB (METHODS 4.5)

// One row, C = 8, k = 8 (r = 1): the 2:4 mask keeps {0.9, -0.7} and {0.8, -0.6}; the pruned
// mean is S = 0.6 / 8 = 0.075; for x = 1^8 the sparse output 0.4 plus SLoRB's 8 S = 0.6 gives
// back the dense 1.0.
TEST(SlorbInitMean, WorkedExampleRestoresTheDenseOutput) {
  const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f, 0.2f, 0.8f, -0.6f, 0.1f};
  const auto m = mask_magnitude(w, 1, 8);
  EXPECT_EQ(m, (std::vector<float>{1, 0, 0, 1, 0, 1, 1, 0}));
  float s = 0;
  SIEVE_OK_OR_FAIL(sieve_slorb_init_mean(&s, w.data(), m.data(), 1, 8, 8));
  EXPECT_EQ(s, (float)(0.6 / 8));
  std::vector<float> x(8, 1.0f), wm(8), p(8, 1.0f);
  for (int i = 0; i < 8; i++) wm[i] = m[i] * w[i];
  float sparse = 0, dense = 0, xp = 0;
  SIEVE_OK_OR_FAIL(sieve_matmul_forward(&sparse, x.data(), wm.data(), nullptr, 1, 8, 1));
  SIEVE_OK_OR_FAIL(sieve_matmul_forward(&dense, x.data(), w.data(), nullptr, 1, 8, 1));
  SIEVE_OK_OR_FAIL(sieve_matmul_forward(&xp, x.data(), p.data(), nullptr, 1, 8, 1));  // X P^T = 8
  EXPECT_NEAR(sparse, 0.4f, 1e-6);
  EXPECT_NEAR(dense, 1.0f, 1e-6);
  EXPECT_NEAR(sparse + xp * s, dense, 1e-6);
}

TEST(SlorbInitMean, IsTheMeanOfThePrunedWeightsOfEachBlock) {
  const int64_t R = 5, K = 32, k = 8;
  const auto w = randn(R * K, 24);
  const auto m = mask_magnitude(w, R, K);
  std::vector<float> s(R * K / k);
  SIEVE_OK_OR_FAIL(sieve_slorb_init_mean(s.data(), w.data(), m.data(), R, K, k));
  for (int64_t d = 0; d < R; d++)
    for (int64_t i = 0; i < K / k; i++) {
      double acc = 0;
      for (int64_t j = i * k; j < (i + 1) * k; j++) acc += (m[d * K + j] == 0.0f) * (double)w[d * K + j];
      ASSERT_EQ(s[d * (K / k) + i], (float)(acc / k)) << d << "," << i;
    }
  EXPECT_EQ(sieve_slorb_init_mean(s.data(), w.data(), m.data(), R, K, 5), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("k = 5 must divide K = 32")) << sieve_last_error();
}
