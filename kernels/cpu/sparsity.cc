// sparsity.cc — the 2:4 kernels of the CPU backend (declared, with their promises, in
// sparsity.h; the exact rules are those of sieve.h's op-level functions).
#include "sparsity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"
#include "core/mvue.h"
#include "core/rng.h"

namespace sieve::cpu {

namespace {

// |x|, with NaN ranked below every number.
inline float rank_key(float x) { return std::isnan(x) ? -1.0f : std::fabs(x); }

// Fixed chunks of a flat reduction (a multiple of 4 and of the 16 lanes).
constexpr int64_t kChunk = 1 << 14;

// The two columns of each of a row's 6 pairs, in the pattern order of sieve.h.
constexpr int kPair[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};

struct Pattern {
  uint8_t pair[4];  // row r keeps the columns of kPair[pair[r]]
  uint16_t bits;    // bit 4 r + c
};

// The 90 4x4 patterns with two ones per row and per column, lexicographic in the rows' pairs.
struct Patterns {
  Pattern p[90];
  uint16_t bits[90];
  Patterns() {
    int n = 0;
    for (int a = 0; a < 6; a++)
      for (int b = 0; b < 6; b++)
        for (int c = 0; c < 6; c++)
          for (int d = 0; d < 6; d++) {
            const int rows[4] = {a, b, c, d};
            int col[4] = {0, 0, 0, 0};
            uint16_t bits = 0;
            for (int r = 0; r < 4; r++)
              for (int e = 0; e < 2; e++) {
                col[kPair[rows[r]][e]]++;
                bits |= (uint16_t)(1u << (4 * r + kPair[rows[r]][e]));
              }
            if (col[0] != 2 || col[1] != 2 || col[2] != 2 || col[3] != 2) continue;
            p[n] = Pattern{{(uint8_t)a, (uint8_t)b, (uint8_t)c, (uint8_t)d}, bits};
            this->bits[n] = bits;
            n++;
          }
  }
};

const Patterns& patterns() {
  static const Patterns table;
  return table;
}

}  // namespace

const uint16_t* transposable_patterns() { return patterns().bits; }

// ---------------------------------------------------------------- masks

void mask24_magnitude(float* mask, const float* w, int64_t R, int64_t K) {
  const int64_t groups = R * K / 4;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; g++) {
    const float* x = w + 4 * g;
    const float k[4] = {rank_key(x[0]), rank_key(x[1]), rank_key(x[2]), rank_key(x[3])};
    for (int i = 0; i < 4; i++) {
      int wins = 0;
      for (int j = 0; j < 4; j++)
        if (j != i) wins += k[i] > k[j] || (k[i] == k[j] && i > j);
      mask[4 * g + i] = wins >= 2 ? 1.0f : 0.0f;
    }
  }
}

void mask24_transposable(float* mask, const float* w, int64_t R, int64_t K) {
  const Patterns& pt = patterns();
  const int64_t bands = R / 4, nb = K / 4;
  constexpr int kTile = 8;  // blocks scored side by side (the lane loops vectorize)
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < bands; i++) {
    const float* band = w + 4 * i * K;
    float* mband = mask + 4 * i * K;
    for (int64_t j0 = 0; j0 < nb; j0 += kTile) {
      const int nt = (int)std::min<int64_t>(kTile, nb - j0);
      float ps[4][6][kTile];  // row r's pair sums of block j0 + lane
      for (int r = 0; r < 4; r++)
        for (int lane = 0; lane < kTile; lane++) {
          float b[4] = {0, 0, 0, 0};
          if (lane < nt)
            for (int c = 0; c < 4; c++) b[c] = rank_key(band[r * K + 4 * (j0 + lane) + c]);
          for (int q = 0; q < 6; q++) ps[r][q][lane] = b[kPair[q][0]] + b[kPair[q][1]];
        }
      float best[kTile];
      int arg[kTile];
      for (int lane = 0; lane < kTile; lane++) {
        const uint8_t* q = pt.p[0].pair;
        best[lane] = ((ps[0][q[0]][lane] + ps[1][q[1]][lane]) + ps[2][q[2]][lane]) + ps[3][q[3]][lane];
        arg[lane] = 0;
      }
      for (int k = 1; k < 90; k++) {
        const uint8_t* q = pt.p[k].pair;
        for (int lane = 0; lane < kTile; lane++) {
          const float s = ((ps[0][q[0]][lane] + ps[1][q[1]][lane]) + ps[2][q[2]][lane]) + ps[3][q[3]][lane];
          const bool better = s > best[lane];  // strict: ties keep the lower index
          best[lane] = better ? s : best[lane];
          arg[lane] = better ? k : arg[lane];
        }
      }
      for (int lane = 0; lane < nt; lane++) {
        const uint16_t bits = pt.p[arg[lane]].bits;
        for (int r = 0; r < 4; r++)
          for (int c = 0; c < 4; c++) mband[r * K + 4 * (j0 + lane) + c] = (bits >> (4 * r + c)) & 1u ? 1.0f : 0.0f;
      }
    }
  }
}

// ---------------------------------------------------------------- S-STE

namespace {

// S(a) of one group into out (times scale); NaN anywhere gives NaN everywhere.
inline void sste_group(float* out, const float* a, float scale) {
  const float m0 = std::fabs(a[0]), m1 = std::fabs(a[1]), m2 = std::fabs(a[2]), m3 = std::fabs(a[3]);
  if (std::isnan(m0 + m1 + m2 + m3)) {
    for (int i = 0; i < 4; i++) out[i] = NAN;
    return;
  }
  // the 2nd smallest of four, branch-free (METHODS 3.2)
  const float t = std::min(std::max(std::min(m0, m1), std::min(m2, m3)), std::min(std::max(m0, m1), std::max(m2, m3)));
  const float m[4] = {m0, m1, m2, m3};
  for (int i = 0; i < 4; i++) out[i] = scale * std::copysign(std::max(m[i] - t, 0.0f), a[i]);
}

}  // namespace

void sste_threshold(float* out, const float* w, float scale, int64_t n) {
  const int64_t groups = n / 4;
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < groups; g++) sste_group(out + 4 * g, w + 4 * g, scale);
}

void sste_dots(double* ws, double* ss, const float* w, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> pws(chunks, 0.0), pss(chunks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i1 = std::min(n, (c + 1) * kChunk);
    double a = 0, b = 0;
    for (int64_t i = c * kChunk; i < i1; i += 4) {
      float s[4];
      sste_group(s, w + i, 1.0f);
      for (int j = 0; j < 4; j++) {
        a += (double)w[i + j] * (double)s[j];
        b += (double)s[j] * (double)s[j];
      }
    }
    pws[c] = a;
    pss[c] = b;
  }
  double a = 0, b = 0;
  for (int64_t c = 0; c < chunks; c++) a += pws[c], b += pss[c];
  *ws = a;
  *ss = b;
}

// ---------------------------------------------------------------- MVUE

void mvue24_probabilities(float p[4], const float x[4]) {
  const MvueGroup group({x[0], x[1], x[2], x[3]});
  for (int i = 0; i < 4; i++) p[i] = group.p(i);
}

void mvue24(float* out, const float* g, int64_t N, int64_t D, int64_t ldo, int64_t ldg, uint64_t seed) {
  const int64_t groups = N / 4;
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < groups; q++) {
    for (int64_t d = 0; d < D; d++) {
      float x[4], y[4];
      for (int i = 0; i < 4; i++) x[i] = g[(4 * q + i) * ldg + d];
      mvue24_group(y, x, stream_draw(mvue_column_key(seed, d), (uint64_t)q));
      for (int i = 0; i < 4; i++) out[(4 * q + i) * ldo + d] = y[i];
    }
  }
  for (int64_t r = 4 * groups; r < N; r++)  // a trailing partial group is kept as it is
    for (int64_t d = 0; d < D; d++) out[r * ldo + d] = g[r * ldg + d];
}

// ---------------------------------------------------------------- counts and sums

int64_t mask_flips(const float* before, const float* after, int64_t n) {
  int64_t flips = 0;
#pragma omp parallel for schedule(static) reduction(+ : flips)
  for (int64_t i = 0; i < n; i++) flips += !(before[i] == after[i]);
  return flips;
}

int64_t count24_along_rows(const float* w, int64_t R, int64_t K) {
  const int64_t groups = R * K / 4;
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t g = 0; g < groups; g++) {
    const float* x = w + 4 * g;
    bad += ((x[0] != 0.0f) + (x[1] != 0.0f) + (x[2] != 0.0f) + (x[3] != 0.0f)) > 2;
  }
  return bad;
}

int64_t count24_along_cols(const float* w, int64_t R, int64_t K) {
  const int64_t bands = R / 4;
  int64_t bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < bands; i++) {
    const float* x = w + 4 * i * K;
    for (int64_t c = 0; c < K; c++)
      bad += ((x[c] != 0.0f) + (x[K + c] != 0.0f) + (x[2 * K + c] != 0.0f) + (x[3 * K + c] != 0.0f)) > 2;
  }
  return bad;
}

void masked_abs_sums(double* pruned, double* total, const float* w, const float* mask, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> pp(chunks, 0.0), pt(chunks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i1 = std::min(n, (c + 1) * kChunk);
    double a = 0, b = 0;
    for (int64_t i = c * kChunk; i < i1; i++) {
      const double x = std::fabs((double)w[i]);
      b += x;
      if (mask && mask[i] == 0.0f) a += x;
    }
    pp[c] = a;
    pt[c] = b;
  }
  double a = 0, b = 0;
  for (int64_t c = 0; c < chunks; c++) a += pp[c], b += pt[c];
  *pruned = a;
  *total = b;
}

// ---------------------------------------------------------------- CAST's weight scaling

void weight_scale_forward(float* wt, const float* w, const float* scale, int64_t R, int64_t K, int64_t SG) {
  const int64_t seg = K / SG;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; r++)
    for (int64_t s = 0; s < SG; s++) {
      const float a = scale[r * SG + s];
      const int64_t c0 = r * K + s * seg;
      for (int64_t c = c0; c < c0 + seg; c++) wt[c] = a * w[c];
    }
}

void weight_scale_backward(float* dw, float* dscale, const float* dwt, const float* w, const float* scale, int64_t R,
                           int64_t K, int64_t SG) {
  const int64_t seg = K / SG;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < R; r++)
    for (int64_t s = 0; s < SG; s++) {
      const float a = scale[r * SG + s];
      const int64_t c0 = r * K + s * seg;
      double acc = 0;
      for (int64_t c = c0; c < c0 + seg; c++) {
        dw[c] += a * dwt[c];
        acc += (double)dwt[c] * (double)w[c];
      }
      dscale[r * SG + s] += (float)acc;
    }
}

// ---------------------------------------------------------------- SLoRB

void slorb_init_mean(float* s, const float* w, const float* mask, int64_t R, int64_t K, int64_t k) {
  const int64_t r = K / k;
#pragma omp parallel for schedule(static)
  for (int64_t d = 0; d < R; d++)
    for (int64_t i = 0; i < r; i++) {
      double acc = 0;
      for (int64_t j = i * k; j < (i + 1) * k; j++) {
        const int64_t at = d * K + j;
        acc += (double)w[at] * (1.0 - (mask ? (double)mask[at] : 1.0));
      }
      s[d * r + i] = (float)(acc / (double)k);
    }
}

}  // namespace sieve::cpu
