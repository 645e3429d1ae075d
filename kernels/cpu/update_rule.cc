// update_rule.cc — the update-rule kinds on the CPU, AdamW and the global gradient norm.
#include "update_rule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace sieve::cpu {

void update_rule_apply(float* w, float* m, float* v, const float* grad, const float* mask, bool decay,
                       const StepHyper& hp, const SeamSpec& spec, int64_t n) {
  switch (spec.kind) {
    case SIEVE_RULE_ADAMW:
      adamw_update(w, m, v, grad, hp.lr, hp.beta1, hp.beta2, hp.eps, decay ? hp.weight_decay : 0.0f, hp.t, n);
      return;
    case SIEVE_RULE_FROZEN: return;
    case SIEVE_RULE_AST:
      ast_update(w, m, v, grad, mask, hp.lr, hp.beta1, hp.beta2, hp.eps, decay ? hp.weight_decay : 0.0f,
                 spec.params[0], hp.t, n);
      return;
    case SIEVE_RULE_ADAMS:
      adams_update(w, m, v, grad, mask, hp.lr, hp.beta1, hp.beta2, hp.eps, spec.params[0], spec.params[1], hp.t, n);
      return;
  }
}

void adamw_update(float* w, float* m, float* v, const float* grad, float lr, float beta1, float beta2, float eps,
                  float weight_decay, int64_t t, int64_t n) {
  const float step_size = (float)((double)lr / (1.0 - std::pow((double)beta1, (double)t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, (double)t));
  const float shrink = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; i++) {
    const float g = grad[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    w[i] = w[i] * shrink - step_size * mi / denom;
  }
}

void ast_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1, float beta2,
                float eps, float weight_decay, float lambda, int64_t t, int64_t n) {
  const float step_size = (float)((double)lr / (1.0 - std::pow((double)beta1, (double)t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, (double)t));
  const float shrink = 1.0f - lr * weight_decay;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; i++) {
    const float wi = w[i] * shrink;  // decoupled weight decay first
    const float mi = beta1 * m[i] + (1.0f - beta1) * grad[i];
    // the decay enters after the momentum, so m keeps the loss gradient only
    const float u = mask[i] == 1.0f ? mi : mi + lambda * (1.0f - mask[i]) * wi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * u * u;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - step_size * u / (std::sqrt(vi) / bc2_sqrt + eps);
  }
}

void adams_update(float* w, float* m, float* v, const float* grad, const float* mask, float lr, float beta1,
                  float beta2, float eps, float alpha, float lambda, int64_t t, int64_t n) {
  const float step_size = (float)((double)lr / (1.0 - std::pow((double)beta1, (double)t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow((double)beta2, (double)t));
  const float decay = alpha * lambda;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; i++) {
    const float wi = w[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * grad[i];  // raw-gradient momentum
    const float sign = wi > 0.0f ? 1.0f : wi < 0.0f ? -1.0f : 0.0f;
    const float u = mask[i] == 0.0f ? (1.0f - alpha) * mi + decay * sign : mi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * u * u;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - step_size * u / (std::sqrt(vi) / bc2_sqrt + eps);
  }
}

double global_norm(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks, 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < chunks; k++) {
    const int64_t i1 = std::min(n, (k + 1) * kChunk);
    double acc[kLanes] = {0};
    int64_t i = k * kChunk;
    for (; i + kLanes <= i1; i += kLanes)
      for (int j = 0; j < kLanes; j++) acc[j] += (double)x[i + j] * (double)x[i + j];
    for (int j = 0; i < i1; i++, j++) acc[j] += (double)x[i] * (double)x[i];
    for (int w = kLanes / 2; w > 0; w /= 2)
      for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    partial[k] = acc[0];
  }
  double sum = 0.0;
  for (int64_t k = 0; k < chunks; k++) sum += partial[k];
  return std::sqrt(sum);
}

}  // namespace sieve::cpu
