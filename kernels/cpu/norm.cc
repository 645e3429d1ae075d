// norm.cc — LayerNorm (GPT-2) and RMSNorm (LLaMA), forward and backward.
//
// Row statistics use the fixed-lane sums of common.h. The weight and bias gradients are
// sums over rows: each fixed chunk of rows sums into its own partial, and the partials
// are added in chunk order, so the result does not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"

namespace sieve::cpu {

namespace {

constexpr int64_t kRowChunk = 64;

inline int64_t row_chunks(int64_t N) { return (N + kRowChunk - 1) / kRowChunk; }

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, float eps, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const float* x = inp + r * C;
    const float m = sum_f32(x, C) / (float)C;
    float acc[kLanes] = {0};  // variance, two-pass, fixed lanes
    int64_t i = 0;
    for (; i + kLanes <= C; i += kLanes)
      for (int j = 0; j < kLanes; j++) acc[j] += (x[i + j] - m) * (x[i + j] - m);
    for (int j = 0; i < C; i++, j++) acc[j] += (x[i] - m) * (x[i] - m);
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    const float s = 1.0f / std::sqrt(acc[0] / (float)C + eps);
    float* o = out + r * C;
    for (int64_t c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    mean[r] = m;
    rstd[r] = s;
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* mean, const float* rstd, const float* weight, int64_t N,
                        int64_t C) {
  const int64_t chunks = row_chunks(N);
  std::vector<float> partial(chunks * 2 * C, 0.0f);  // per chunk: [dweight (C) | dbias (C)]
  std::vector<float> scratch(omp_get_max_threads() * 2 * C);  // per thread: [dnorm | xhat]
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; k++) {
    float* pw = partial.data() + k * 2 * C;
    float* pb = pw + C;
    float* dnorm = scratch.data() + omp_get_thread_num() * 2 * C;
    float* xhat = dnorm + C;
    const int64_t r1 = std::min(N, (k + 1) * kRowChunk);
    for (int64_t r = k * kRowChunk; r < r1; r++) {
      // every array here is distinct: __restrict lets each loop vectorize without checks
      const float* __restrict x = inp + r * C;
      const float* __restrict dy = dout + r * C;
      const float* __restrict w = weight;
      float* __restrict xh = xhat;
      float* __restrict dn = dnorm;
      float* __restrict gw = pw;
      float* __restrict gb = pb;
      const float m = mean[r], s = rstd[r];
      // dxhat = dy w;  dx = s (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
      for (int64_t c = 0; c < C; c++) xh[c] = (x[c] - m) * s;
      for (int64_t c = 0; c < C; c++) dn[c] = dy[c] * w[c];
      for (int64_t c = 0; c < C; c++) gw[c] += dy[c] * xh[c];
      for (int64_t c = 0; c < C; c++) gb[c] += dy[c];
      const float mean_d = sum_f32(dn, C) / (float)C;
      const float mean_dx = dot_f32(dn, xh, C) / (float)C;
      float* __restrict dx = dinp + r * C;
      for (int64_t c = 0; c < C; c++) dx[c] += s * (dn[c] - mean_d - xh[c] * mean_dx);
    }
  }
  for (int64_t k = 0; k < chunks; k++) {
    const float* pw = partial.data() + k * 2 * C;
    for (int64_t c = 0; c < C; c++) dweight[c] += pw[c];
    for (int64_t c = 0; c < C; c++) dbias[c] += pw[C + c];
  }
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, float eps,
                     int64_t N, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const float* x = inp + r * C;
    const float s = 1.0f / std::sqrt(dot_f32(x, x, C) / (float)C + eps);
    float* o = out + r * C;
    for (int64_t c = 0; c < C; c++) o[c] = x[c] * s * weight[c];
    rstd[r] = s;
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* rstd,
                      const float* weight, int64_t N, int64_t C) {
  const int64_t chunks = row_chunks(N);
  std::vector<float> partial(chunks * C, 0.0f);
  std::vector<float> scratch(omp_get_max_threads() * C);  // per thread: dnorm
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; k++) {
    float* pw = partial.data() + k * C;
    float* dnorm = scratch.data() + omp_get_thread_num() * C;
    const int64_t r1 = std::min(N, (k + 1) * kRowChunk);
    for (int64_t r = k * kRowChunk; r < r1; r++) {
      const float* __restrict x = inp + r * C;
      const float* __restrict dy = dout + r * C;
      const float* __restrict w = weight;
      float* __restrict dn = dnorm;
      float* __restrict gw = pw;
      const float s = rstd[r];
      // xhat = x s;  dx = s (dxhat - xhat mean(dxhat xhat))
      for (int64_t c = 0; c < C; c++) dn[c] = dy[c] * w[c];
      for (int64_t c = 0; c < C; c++) gw[c] += dy[c] * x[c] * s;
      const float mean_dx = dot_f32(dn, x, C) * s / (float)C;
      float* __restrict dx = dinp + r * C;
      for (int64_t c = 0; c < C; c++) dx[c] += s * (dn[c] - x[c] * s * mean_dx);
    }
  }
  for (int64_t k = 0; k < chunks; k++) {
    const float* pw = partial.data() + k * C;
    for (int64_t c = 0; c < C; c++) dweight[c] += pw[c];
  }
}

}  // namespace sieve::cpu
