// activation.cc — GELU (tanh approximation, as GPT-2) and SwiGLU (as LLaMA).
//
// Elementwise only; tanh and sigmoid come from exp_f32 (common.h), so the loops vectorize
// and give the same bits at any thread count.
#include <cmath>

#include "ops.h"

namespace sieve::cpu {

namespace {
constexpr float kGeluScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;
}  // namespace

void gelu_forward(float* out, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    out[i] = 0.5f * x * (1.0f + tanh_f32(u));
  }
}

void gelu_backward(float* dinp, const float* dout, const float* inp, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float x = inp[i];
    const float u = kGeluScale * (x + kGeluCubic * x * x * x);
    const float th = tanh_f32(u);
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCubic * x * x);
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
    dinp[i] = grad * dout[i];
  }
}

void swiglu_forward(float* out, const float* inp, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const float* gate = inp + r * 2 * H;
    const float* up = gate + H;
    float* o = out + r * H;
    for (int64_t j = 0; j < H; j++) o[j] = gate[j] * sigmoid_f32(gate[j]) * up[j];
  }
}

void swiglu_backward(float* dinp, const float* dout, const float* inp, int64_t N, int64_t H) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N; r++) {
    const float* gate = inp + r * 2 * H;
    const float* up = gate + H;
    const float* dy = dout + r * H;
    float* dgate = dinp + r * 2 * H;
    float* dup = dgate + H;
    for (int64_t j = 0; j < H; j++) {
      const float g = gate[j];
      const float sg = sigmoid_f32(g);
      const float silu = g * sg;
      // silu'(g) = sg (1 + g (1 - sg))
      dgate[j] = dy[j] * up[j] * sg * (1.0f + g * (1.0f - sg));
      dup[j] = dy[j] * silu;
    }
  }
}

}  // namespace sieve::cpu
