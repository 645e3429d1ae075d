// matmul.cc — linear layers (nn.Linear layout, weight (OC, IC)) on top of the engine GEMM.
//
// The bias gradient is a column sum over tokens; it is summed in fixed chunks of rows and
// the chunks are added in order, so the bits do not depend on the thread count.
#include <algorithm>
#include <vector>

#include "gemm.h"
#include "ops.h"

namespace sieve::cpu {

namespace {

constexpr int64_t kRowChunk = 64;

// out[c] += sum over rows of x[r, c], in row chunks of kRowChunk added in order.
void column_sum_accumulate(float* out /* (C) += */, const float* x /* (N, C) */, int64_t N, int64_t C) {
  const int64_t chunks = (N + kRowChunk - 1) / kRowChunk;
  std::vector<float> partial(chunks * C, 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; k++) {
    float* acc = partial.data() + k * C;
    const int64_t r1 = std::min(N, (k + 1) * kRowChunk);
    for (int64_t r = k * kRowChunk; r < r1; r++) {
      const float* row = x + r * C;
      for (int64_t c = 0; c < C; c++) acc[c] += row[c];
    }
  }
  for (int64_t k = 0; k < chunks; k++) {
    const float* acc = partial.data() + k * C;
    for (int64_t c = 0; c < C; c++) out[c] += acc[c];
  }
}

}  // namespace

void residual_bias_forward(float* out, const float* res, const float* bias, int64_t N, int64_t C) {
  if (out == res && !bias) return;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; r++) {
    float* o = out + r * C;
    if (out == res) {  // in place (inference): one pointer, so the loop vectorizes unchecked
      for (int64_t c = 0; c < C; c++) o[c] += bias[c];
      continue;
    }
    const float* x = res + r * C;
    if (bias)
      for (int64_t c = 0; c < C; c++) o[c] = x[c] + bias[c];
    else
      for (int64_t c = 0; c < C; c++) o[c] = x[c];
  }
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N,
                    int64_t IC, int64_t OC, bool accumulate, GemmStats* stats) {
  float beta = accumulate ? 1.0f : 0.0f;
  if (bias) {  // put the bias in first, then let the GEMM add onto it
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N; r++) {
      float* o = out + r * OC;
      if (accumulate)
        for (int64_t c = 0; c < OC; c++) o[c] += bias[c];
      else
        for (int64_t c = 0; c < OC; c++) o[c] = bias[c];
    }
    beta = 1.0f;
  }
  sgemm(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, beta, out, OC, stats);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t IC, int64_t OC, GemmStats* stats) {
  if (dinp) sgemm(false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, dinp, IC, stats);
  if (dweight) sgemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC, stats);
  if (dbias) column_sum_accumulate(dbias, dout, N, OC);
}

}  // namespace sieve::cpu
