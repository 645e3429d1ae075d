// update_rule.cc — the update-rule kinds, AdamW, the global gradient norm and the LR schedule.
#include "update_rule.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace sieve::cpu {

const char* update_rule_name(int32_t kind) {
  switch (kind) {
    case SIEVE_RULE_ADAMW: return "adamw";
    case SIEVE_RULE_FROZEN: return "frozen";
  }
  return "unknown";
}

void update_rule_validate(int32_t kind, const float* params, int64_t n_params, const std::string& tensor) {
  (void)params;
  switch (kind) {
    case SIEVE_RULE_ADAMW:
    case SIEVE_RULE_FROZEN:
      SIEVE_CHECK(n_params == 0, "update rule '%s' of tensor '%s' takes no parameters, got %lld",
                  update_rule_name(kind), tensor.c_str(), (long long)n_params);
      return;
  }
  fail(SIEVE_E_INVALID_ARGUMENT, "unknown update rule kind %d for tensor '%s'", (int)kind, tensor.c_str());
}

bool update_rule_uses_mask(int32_t kind) {
  (void)kind;
  return false;
}

bool update_rule_uses_moments(int32_t kind) { return kind == SIEVE_RULE_ADAMW; }

void update_rule_apply(float* w, float* m, float* v, const float* grad, const float* mask, bool decay,
                       const StepHyper& hp, const RuleSpec& spec, int64_t n) {
  (void)mask;
  switch (spec.kind) {
    case SIEVE_RULE_ADAMW:
      adamw_update(w, m, v, grad, hp.lr, hp.beta1, hp.beta2, hp.eps, decay ? hp.weight_decay : 0.0f, hp.t, n);
      return;
    case SIEVE_RULE_FROZEN: return;
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

double lr_at(int64_t step, double peak, double min, int64_t warmup, int64_t total) {
  if (step < warmup) return peak * (double)(step + 1) / (double)warmup;
  if (step >= total) return min;
  const double progress = (double)(step - warmup) / (double)(total - warmup);
  return min + (peak - min) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace sieve::cpu
