// loss.cc — softmax cross-entropy and the distillation loss, one position at a time.
//
// loss = (1 - alpha) CE(s, target) + alpha tau^2 KL(p || q), p = softmax(t / tau) (teacher),
// q = softmax(s / tau) (student). The gradient with respect to the student logits is
//   (1 - alpha) (softmax(s) - onehot(target)) + alpha tau (q - p).
// Log-sum-exps are formed in double from fixed-lane sums; with t == s the KL is exactly 0.
#include <cmath>
#include <cstring>

#include "ops.h"

namespace sieve::cpu {

namespace {

// sum_j exp(x[j] * mul - shift), fixed lanes
inline float sum_exp(const float* x, int64_t n, float mul, float shift) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; j++) acc[j] += exp_f32(x[i + j] * mul - shift);
  for (int j = 0; i < n; i++, j++) acc[j] += exp_f32(x[i] * mul - shift);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; j++) acc[j] += acc[j + w];
  return acc[0];
}

}  // namespace

RowLoss loss_row(float* dlogits, const float* logits, int32_t target, const float* teacher, float alpha,
                 float tau, float dscale, int64_t V) {
  if (target < 0) {
    if (dlogits) std::memset(dlogits, 0, sizeof(float) * V);
    return {0.0f, 0.0f};
  }
  const float m = max_f32(logits, V);
  const float lse = (float)((double)m + std::log((double)sum_exp(logits, V, 1.0f, m)));
  RowLoss out{lse - logits[target], 0.0f};

  float lse_p = 0.0f, lse_q = 0.0f;
  const float inv_tau = 1.0f / tau;
  if (teacher) {
    const float mt = max_f32(teacher, V) * inv_tau;
    const float ms = m * inv_tau;
    lse_p = (float)((double)mt + std::log((double)sum_exp(teacher, V, inv_tau, mt)));
    lse_q = (float)((double)ms + std::log((double)sum_exp(logits, V, inv_tau, ms)));
    // KL = sum_j p_j (t_j / tau - s_j / tau) - lse_p + lse_q
    float acc[kLanes] = {0};
    auto term = [&](int64_t j) {
      const float tt = teacher[j] * inv_tau;
      return exp_f32(tt - lse_p) * (tt - logits[j] * inv_tau);
    };
    int64_t i = 0;
    for (; i + kLanes <= V; i += kLanes)
      for (int j = 0; j < kLanes; j++) acc[j] += term(i + j);
    for (int j = 0; i < V; i++, j++) acc[j] += term(i);
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    out.kl = acc[0] - lse_p + lse_q;
  }

  if (dlogits) {
    const float ce_w = dscale * (teacher ? 1.0f - alpha : 1.0f);
    const float kd_w = dscale * alpha * tau;
    // One pointer for the in-place case (the usual one): with two, the compiler must assume
    // they may overlap and falls back to scalar code when they do.
    float* d = dlogits;
    const float* s = dlogits == logits ? dlogits : logits;
    if (!teacher) {
      if (d == s)
        for (int64_t j = 0; j < V; j++) d[j] = ce_w * exp_f32(d[j] - lse);
      else
        for (int64_t j = 0; j < V; j++) d[j] = ce_w * exp_f32(s[j] - lse);
    } else {
      auto grad = [&](float sj, float tj) {
        return ce_w * exp_f32(sj - lse) + kd_w * (exp_f32(sj * inv_tau - lse_q) - exp_f32(tj * inv_tau - lse_p));
      };
      if (d == s)
        for (int64_t j = 0; j < V; j++) d[j] = grad(d[j], teacher[j]);
      else
        for (int64_t j = 0; j < V; j++) d[j] = grad(s[j], teacher[j]);
    }
    d[target] -= ce_w;
  }
  return out;
}

}  // namespace sieve::cpu
