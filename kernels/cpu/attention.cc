// attention.cc — causal multi-head attention built from GEMMs, and RoPE.
//
// Each (batch, head) pair is an independent task run by one thread with single-threaded
// GEMMs straight on the strided q/k/v slices of the qkv buffer (no transposes, no copies).
// The causal structure is used in blocks of kBlock query rows: block i only multiplies
// against keys [0, end of block i), which skips most of the masked upper triangle. The
// block size is a constant, so the bits never depend on the thread count. The backward reads
// the forward's probabilities when they were kept, or recomputes them by the forward's own
// calls, the same bits, into per-thread scratch (model.cc decides which).
//
// Layout: qkv (B, T, 3C) holds [q | k | v] per token, head h at channels [h HS, (h+1) HS)
// of each part. S = q k^T / sqrt(HS), P = softmax(S) over keys <= query, y = P v.
#include <algorithm>
#include <cmath>

#include "gemm.h"
#include "ops.h"

namespace sieve::cpu {

namespace {

constexpr int64_t kBlock = 64;

// Softmax of row i of S over keys [0, i], in place; zeros keys (i, end).
inline void causal_softmax_row(float* row, int64_t i, int64_t end) {
  const int64_t n = i + 1;
  const float m = max_f32(row, n);
  for (int64_t j = 0; j < n; j++) row[j] = exp_f32(row[j] - m);
  const float inv = 1.0f / sum_f32(row, n);
  for (int64_t j = 0; j < n; j++) row[j] *= inv;
  for (int64_t j = n; j < end; j++) row[j] = 0.0f;
}

// Rows [r0, r1) of P: S[r0:r1, 0:r1] = scale q[r0:r1] k[0:r1]^T, then each row's causal softmax.
void probabilities(float* P, const float* q, const float* k, int64_t r0, int64_t r1, int64_t T, int64_t C,
                   int64_t HS, float scale) {
  sgemm_serial(false, true, r1 - r0, r1, HS, scale, q + r0 * 3 * C, 3 * C, k, 3 * C, 0.0f, P + r0 * T, T);
  for (int64_t i = r0; i < r1; i++) causal_softmax_row(P + i * T, i, r1);
}

}  // namespace

// Rotate q and k of every head by +angle (sign = 1) or -angle (sign = -1, the backward).
static void rope_rotate(float* qkv, const float* cos_t, const float* sin_t, int64_t B, int64_t T,
                        int64_t C, int64_t NH, float sign) {
  const int64_t HS = C / NH, half = HS / 2;
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const int64_t t = bt % T;
    const float* cs = cos_t + t * half;
    const float* sn = sin_t + t * half;
    for (int64_t part = 0; part < 2; part++)  // q, then k
      for (int64_t h = 0; h < NH; h++) {
        float* x = qkv + bt * 3 * C + part * C + h * HS;
        for (int64_t i = 0; i < half; i++) {
          const float x1 = x[i], x2 = x[i + half];
          const float s = sign * sn[i];
          x[i] = x1 * cs[i] - x2 * s;
          x[i + half] = x2 * cs[i] + x1 * s;
        }
      }
  }
}

void rope_forward(float* qkv, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t C,
                  int64_t NH) {
  rope_rotate(qkv, cos_t, sin_t, B, T, C, NH, 1.0f);
}

void rope_backward(float* dqkv, const float* cos_t, const float* sin_t, int64_t B, int64_t T, int64_t C,
                   int64_t NH) {
  // the rotation is orthogonal: its transpose is the rotation by -angle
  rope_rotate(dqkv, cos_t, sin_t, B, T, C, NH, -1.0f);
}

void attention_forward(float* out, float* att, float* scratch, const float* qkv, int64_t B, int64_t T,
                       int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float* q = qkv + b * T * 3 * C + h * HS;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* P = att ? att + bh * T * T : scratch + (int64_t)omp_get_thread_num() * T * T;
    float* y = out + b * T * C + h * HS;
    for (int64_t r0 = 0; r0 < T; r0 += kBlock) {
      const int64_t r1 = std::min(T, r0 + kBlock), rows = r1 - r0;
      probabilities(P, q, k, r0, r1, T, C, HS, scale);
      // y[r0:r1] = P[r0:r1, 0:r1] v[0:r1]
      sgemm_serial(false, false, rows, HS, r1, 1.0f, P + r0 * T, T, v, 3 * C, 0.0f, y + r0 * C, C);
    }
  }
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att,
                        int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  const float scale = 1.0f / std::sqrt((float)HS);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float* q = qkv + b * T * 3 * C + h * HS;
    const float* k = q + C;
    const float* v = q + 2 * C;
    const float* dy = dout + b * T * C + h * HS;
    float* dq = dqkv + b * T * 3 * C + h * HS;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    float* own = scratch + (int64_t)omp_get_thread_num() * (att ? 1 : 2) * T * T;
    float* dS = own;                                   // dP, then dS, in place
    float* recomputed = att ? nullptr : own + T * T;  // P, when the forward did not keep it
    const float* P = att ? att + bh * T * T : recomputed;
    for (int64_t r0 = 0; r0 < T; r0 += kBlock) {
      const int64_t r1 = std::min(T, r0 + kBlock), rows = r1 - r0;
      if (recomputed) probabilities(recomputed, q, k, r0, r1, T, C, HS, scale);
      // dP[r0:r1, 0:r1] = dy[r0:r1] v[0:r1]^T
      sgemm_serial(false, true, rows, r1, HS, 1.0f, dy + r0 * C, C, v, 3 * C, 0.0f, dS + r0 * T, T);
      // dS = P (dP - sum_j P dP), zero above the diagonal
      for (int64_t i = r0; i < r1; i++) {
        const float* p = P + i * T;
        float* d = dS + i * T;
        const float pd = dot_f32(p, d, i + 1);
        for (int64_t j = 0; j <= i; j++) d[j] = p[j] * (d[j] - pd);
        for (int64_t j = i + 1; j < r1; j++) d[j] = 0.0f;
      }
      // dq[r0:r1] = scale dS[r0:r1, 0:r1] k[0:r1]
      sgemm_serial(false, false, rows, HS, r1, scale, dS + r0 * T, T, k, 3 * C, 0.0f, dq + r0 * 3 * C,
                   3 * C);
    }
    // keys block [j0, j1) is seen by queries [j0, T) only
    for (int64_t j0 = 0; j0 < T; j0 += kBlock) {
      const int64_t j1 = std::min(T, j0 + kBlock), cols = j1 - j0;
      // dk[j0:j1] = scale dS[j0:T, j0:j1]^T q[j0:T]
      sgemm_serial(true, false, cols, HS, T - j0, scale, dS + j0 * T + j0, T, q + j0 * 3 * C, 3 * C, 0.0f,
                   dk + j0 * 3 * C, 3 * C);
      // dv[j0:j1] = P[j0:T, j0:j1]^T dy[j0:T]
      sgemm_serial(true, false, cols, HS, T - j0, 1.0f, P + j0 * T + j0, T, dy + j0 * C, C, 0.0f,
                   dv + j0 * 3 * C, 3 * C);
    }
  }
}

}  // namespace sieve::cpu
