// optim_test.cc — the optimizer path: AdamW against hand-computed steps, global-norm
// clipping, the gradient hook (METHODS 2.2 worked example), update rules per tensor,
// the step counter, the LR schedule, and the op-level mask transform.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sieve.h"
#include "util.h"

using namespace testutil;

TEST(AdamW, TwoStepsMatchHandComputation) {
  // w = [0.5, -1, 2], g = [0.1, -0.2, 0.3], lr 0.01, betas (0.9, 0.999), eps 1e-8, wd 0.1,
  // all as the float32 values the kernel receives (0.999f is not 0.999).
  // Step 1: m = (1 - b1) g, v = (1 - b2) g^2; the bias corrections 1 - b1 and 1 - b2 give
  // back g and g^2, so w1 = w (1 - lr wd) - lr g / (|g| + eps).
  const double lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  std::vector<float> w = {0.5f, -1.0f, 2.0f}, m(3, 0.0f), v(3, 0.0f), g = {0.1f, -0.2f, 0.3f};
  SIEVE_OK_OR_FAIL(sieve_adamw_update(w.data(), m.data(), v.data(), g.data(), 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 3));
  double w1[3], m1[3], v1[3];
  for (int i = 0; i < 3; i++) {
    const double gi = g[i], w0 = i == 0 ? 0.5 : i == 1 ? -1.0 : 2.0;
    m1[i] = (1 - b1) * gi;
    v1[i] = (1 - b2) * gi * gi;
    w1[i] = w0 * (1 - lr * wd) - lr * gi / (std::fabs(gi) + eps);
    // float32 arithmetic inside the kernel: a few ulps
    EXPECT_NEAR(w[i], w1[i], 1e-6 * std::fabs(w1[i])) << i;
    EXPECT_NEAR(m[i], m1[i], 1e-6 * std::fabs(m1[i])) << i;
    EXPECT_NEAR(v[i], v1[i], 1e-6 * std::fabs(v1[i])) << i;
  }
  // Step 2 with g' = [-0.1, 0.1, 0.3]: m2 = b1 m1 + (1 - b1) g', v2 = b2 v1 + (1 - b2) g'^2,
  // bias corrections 1 - b1^2 and 1 - b2^2.
  std::vector<float> g2 = {-0.1f, 0.1f, 0.3f};
  SIEVE_OK_OR_FAIL(sieve_adamw_update(w.data(), m.data(), v.data(), g2.data(), 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 2, 3));
  for (int i = 0; i < 3; i++) {
    const double gi = g2[i];
    const double m2 = b1 * m1[i] + (1 - b1) * gi;
    const double v2 = b2 * v1[i] + (1 - b2) * gi * gi;
    const double want = w1[i] * (1 - lr * wd) - (lr / (1 - b1 * b1)) * m2 / (std::sqrt(v2) / std::sqrt(1 - b2 * b2) + eps);
    EXPECT_NEAR(w[i], want, 2e-6 * std::fabs(want)) << i;
    EXPECT_NEAR(m[i], m2, 1e-6 * std::fabs(m2)) << i;
    EXPECT_NEAR(v[i], v2, 1e-6 * std::fabs(v2)) << i;
  }
}

namespace {

sieve_optim_opts adam_opts(float clip, int32_t skip_nonfinite = 0) {
  return sieve_optim_opts{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, clip, skip_nonfinite};
}

}  // namespace

TEST(Optimizer, ModelStepAppliesAdamWWithDecayOnMatricesOnly) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  randomize_params(h, 1);
  const int64_t P = h.num_params();
  const auto grads = randn(P, 2, 0.01f);
  h.write(SIEVE_BUFFER_GRADS, grads);
  const std::vector<float> before = h.read(SIEVE_BUFFER_PARAMS);
  const int64_t frozen = h.index("blocks.1.mlp.fc.weight");
  SIEVE_OK_OR_FAIL(sieve_model_set_update_rule(h.m, frozen, SIEVE_RULE_FROZEN, nullptr, 0));
  float norm = 0;
  const sieve_optim_opts o = adam_opts(0.0f);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &o));
  int64_t step = 0;
  SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &step));
  EXPECT_EQ(step, 1);
  double sq = 0;
  for (float x : grads) sq += (double)x * x;
  EXPECT_NEAR(norm, std::sqrt(sq), 1e-6 * std::sqrt(sq));
  const std::vector<float> p = h.read(SIEVE_BUFFER_PARAMS);
  for (const sieve_tensor_info& t : h.tensors()) {
    for (int64_t i = 0; i < t.size; i++) {
      const int64_t k = t.offset + i;
      if (t.offset == h.tensors()[frozen].offset) {
        ASSERT_EQ(p[k], before[k]) << t.name;
        continue;
      }
      // step 1: m/(1-b1) = g, v/(1-b2) = g^2
      const double wd = t.decay ? 0.1 : 0.0;
      const double want = before[k] * (1.0 - 1e-2 * wd) - 1e-2 * grads[k] / (std::fabs(grads[k]) + 1e-8);
      ASSERT_NEAR(p[k], want, 1e-6) << t.name << "[" << i << "]";
    }
  }
  const std::vector<float> mv = h.read(SIEVE_BUFFER_ADAM_M);
  for (int64_t i = 0; i < h.tensors()[frozen].size; i++)
    ASSERT_EQ(mv[h.tensors()[frozen].offset + i], 0.0f) << "frozen tensors keep no moments";
}

// With every tensor frozen no rule keeps moments: the step moves nothing, allocates no
// moments (they read as zeros), and still counts.
TEST(Optimizer, AllFrozenStepMovesNothingAndCounts) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_LLAMA);
  ModelHandle h(cfg);
  randomize_params(h, 4);
  const int64_t P = h.num_params();
  for (int64_t i = 0; i < (int64_t)h.tensors().size(); i++)
    SIEVE_OK_OR_FAIL(sieve_model_set_update_rule(h.m, i, SIEVE_RULE_FROZEN, nullptr, 0));
  h.write(SIEVE_BUFFER_GRADS, randn(P, 5, 0.1f));
  const std::vector<float> before = h.read(SIEVE_BUFFER_PARAMS);
  float norm = 0;
  const sieve_optim_opts o = adam_opts(0.0f);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &o));
  EXPECT_GT(norm, 0.0f);
  EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), before.data(), P));
  for (int32_t which : {SIEVE_BUFFER_ADAM_M, SIEVE_BUFFER_ADAM_V})
    for (float x : h.read(which)) ASSERT_EQ(x, 0.0f);
  int64_t step = 0;
  SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &step));
  EXPECT_EQ(step, 1);
}

TEST(Optimizer, StepCounterDrivesBiasCorrectionAndIsSettable) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_LLAMA);
  ModelHandle h(cfg);
  randomize_params(h, 3);
  const int64_t P = h.num_params();
  h.write(SIEVE_BUFFER_GRADS, std::vector<float>(P, 0.01f));
  const std::vector<float> before = h.read(SIEVE_BUFFER_PARAMS);
  SIEVE_OK_OR_FAIL(sieve_model_set_step(h.m, 99));  // the next step is t = 100
  float norm = 0;
  sieve_optim_opts o = adam_opts(0.0f);
  o.weight_decay = 0.0f;
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &o));
  // t = 100: m = 0.1 g, v = 0.05 g^2; corrections 1 - 0.9^100 and 1 - 0.95^100
  const double bc1 = 1 - std::pow(0.9, 100), bc2 = 1 - std::pow(0.95, 100);
  const double upd = 1e-2 / bc1 * 0.001 / (std::sqrt(0.05 * 1e-4) / std::sqrt(bc2) + 1e-8);
  const std::vector<float> p = h.read(SIEVE_BUFFER_PARAMS);
  for (int64_t i = 0; i < P; i++) ASSERT_NEAR(p[i], before[i] - upd, 1e-7) << i;
  int64_t step = 0;
  SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &step));
  EXPECT_EQ(step, 100);
  EXPECT_EQ(sieve_model_set_step(h.m, -1), SIEVE_E_INVALID_ARGUMENT);
}

TEST(Optimizer, ClipsToTheGlobalNormAndReportsItBeforeClipping) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  const int64_t P = h.num_params();
  std::vector<float> g(P);
  for (int64_t i = 0; i < P; i++) g[i] = (i % 2 ? 0.5f : -0.5f);
  h.write(SIEVE_BUFFER_GRADS, g);
  const double norm = 0.5 * std::sqrt((double)P);
  float got = 0;
  const sieve_optim_opts o = adam_opts(1.0f);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &got, &o));
  EXPECT_NEAR(got, norm, 1e-5 * norm);
  const float s = (float)(1.0 / (norm + 1e-6));
  g = h.read(SIEVE_BUFFER_GRADS);
  double clipped = 0;
  for (int64_t i = 0; i < P; i++) {
    ASSERT_EQ(g[i], (i % 2 ? 0.5f : -0.5f) * s) << "grads hold the clipped gradient";
    clipped += (double)g[i] * g[i];
  }
  EXPECT_NEAR(std::sqrt(clipped), 1.0, 1e-5);
  // under the threshold: untouched
  h.write(SIEVE_BUFFER_GRADS, std::vector<float>(P, 1e-4f));
  const sieve_optim_opts loose = adam_opts(1e6f);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &got, &loose));
  g = h.read(SIEVE_BUFFER_GRADS);
  for (int64_t i = 0; i < P; i++) ASSERT_EQ(g[i], 1e-4f);
}

// skip_nonfinite: a NaN or infinite gradient norm is reported and nothing else happens, so the
// caller can discard the step; a finite norm gives exactly the step without the option.
TEST(Optimizer, SkipNonFiniteLeavesEverythingUntouched) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  randomize_params(h, 3);
  const int64_t P = h.num_params();
  float norm = 0;
  h.write(SIEVE_BUFFER_GRADS, randn(P, 4, 0.01f));
  const sieve_optim_opts skip = adam_opts(1.0f, 1);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &skip));  // moments now hold something
  ASSERT_TRUE(std::isfinite(norm));
  for (const float bad : {NAN, INFINITY, -INFINITY}) {
    std::vector<float> g = randn(P, 5, 0.01f);
    g[P / 2] = bad;
    h.write(SIEVE_BUFFER_GRADS, g);
    const auto params = h.read(SIEVE_BUFFER_PARAMS), m = h.read(SIEVE_BUFFER_ADAM_M), v = h.read(SIEVE_BUFFER_ADAM_V);
    int64_t step = 0;
    SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &step));
    SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &skip));
    EXPECT_FALSE(std::isfinite(norm)) << bad;
    EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), params.data(), P)) << "weights untouched";
    EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_ADAM_M).data(), m.data(), P)) << "first moment untouched";
    EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_ADAM_V).data(), v.data(), P)) << "second moment untouched";
    EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_GRADS).data(), g.data(), P)) << "gradient neither clipped nor hooked";
    int64_t after = 0;
    SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &after));
    EXPECT_EQ(after, step) << "the step counter does not count a skipped step";
  }
  // Without the option the same gradient is applied: the step counts and NaN reaches the weights.
  std::vector<float> g = randn(P, 6, 0.01f);
  g[0] = NAN;
  h.write(SIEVE_BUFFER_GRADS, g);
  const sieve_optim_opts apply = adam_opts(1.0f, 0);
  int64_t before = 0, after = 0;
  SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &before));
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &apply));
  SIEVE_OK_OR_FAIL(sieve_model_get_step(h.m, &after));
  EXPECT_EQ(after, before + 1);
  EXPECT_TRUE(std::isnan(h.read(SIEVE_BUFFER_PARAMS)[0]));
  // Any other value of the flag is refused.
  const sieve_optim_opts bogus = adam_opts(1.0f, 2);
  EXPECT_EQ(sieve_model_optimizer_step(h.m, &norm, &bogus), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("skip_nonfinite"), std::string::npos);
}

TEST(Optimizer, SkipNonFiniteWithAFiniteNormIsTheOrdinaryStep) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle a(cfg), b(cfg);
  randomize_params(a, 8);
  randomize_params(b, 8);
  const int64_t P = a.num_params();
  for (int s = 0; s < 3; s++) {
    const auto g = randn(P, 10 + s, 0.5f);  // large enough that clipping applies
    a.write(SIEVE_BUFFER_GRADS, g);
    b.write(SIEVE_BUFFER_GRADS, g);
    float na = 0, nb = 0;
    const sieve_optim_opts with = adam_opts(1.0f, 1), without = adam_opts(1.0f, 0);
    SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(a.m, &na, &with));
    SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(b.m, &nb, &without));
    EXPECT_TRUE(same_bits(&na, &nb, 1));
  }
  for (const int32_t which : {SIEVE_BUFFER_PARAMS, SIEVE_BUFFER_ADAM_M, SIEVE_BUFFER_ADAM_V, SIEVE_BUFFER_GRADS})
    EXPECT_TRUE(same_bits(a.read(which).data(), b.read(which).data(), P)) << which;
}

// METHODS 2.2 worked example: w = [0.9, -0.1, 0.4, -0.7], M = [1, 0, 0, 1],
// g = [0.05, -0.02, 0.01, 0.03], lambda = 2e-4 -> [0.05, -0.02002, 0.01008, 0.03].
TEST(GradHook, MaskedDecayWorkedExample) {
  const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f}, mask = {1, 0, 0, 1}, g0 = {0.05f, -0.02f, 0.01f, 0.03f};
  const float lambda = 2e-4f;
  auto g = g0;
  SIEVE_OK_OR_FAIL(sieve_grad_hook(g.data(), w.data(), mask.data(), SIEVE_HOOK_MASKED_DECAY, &lambda, 1, 4));
  EXPECT_TRUE(same_bits(&g[0], &g0[0], 1)) << "kept entries are bit-identical";
  EXPECT_TRUE(same_bits(&g[3], &g0[3], 1));
  EXPECT_EQ(g[1], g0[1] + lambda * w[1]) << "pruned entries change by exactly lambda w";
  EXPECT_EQ(g[2], g0[2] + lambda * w[2]);
  EXPECT_FLOAT_EQ(g[1], -0.02002f);  // the document's rounded values, to float precision
  EXPECT_FLOAT_EQ(g[2], 0.01008f);
  // a kept -0 stays -0 (g + 0 would make it +0)
  std::vector<float> z = {-0.0f}, one = {1.0f}, wz = {3.0f};
  SIEVE_OK_OR_FAIL(sieve_grad_hook(z.data(), wz.data(), one.data(), SIEVE_HOOK_MASKED_DECAY, &lambda, 1, 1));
  EXPECT_TRUE(std::signbit(z[0]));
  EXPECT_EQ(sieve_grad_hook(z.data(), wz.data(), one.data(), SIEVE_HOOK_MASKED_DECAY, nullptr, 0, 1),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("takes one parameter (lambda)"), std::string::npos);
}

// In the model the hook runs after clipping, so clipping never shrinks the decay term.
TEST(GradHook, MaskedDecayInTheModelRunsAfterClipping) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  randomize_params(h, 7);
  const int64_t P = h.num_params();
  const int64_t idx = h.index("blocks.0.mlp.fc.weight");
  const sieve_tensor_info t = h.tensors()[idx];
  std::vector<float> mask = h.read(SIEVE_BUFFER_MASKS);
  for (int64_t i = 0; i < t.size; i++) mask[t.offset + i] = (i % 4 < 2) ? 1.0f : 0.0f;
  h.write(SIEVE_BUFFER_MASKS, mask);
  h.write(SIEVE_BUFFER_GRADS, std::vector<float>(P, 1.0f));
  const std::vector<float> w0 = h.read(SIEVE_BUFFER_PARAMS);
  const float lambda = 0.5f;
  SIEVE_OK_OR_FAIL(sieve_model_set_grad_hook(h.m, idx, SIEVE_HOOK_MASKED_DECAY, &lambda, 1));
  float norm = 0;
  const sieve_optim_opts o = adam_opts(1.0f);
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &o));
  const std::vector<float> g = h.read(SIEVE_BUFFER_GRADS);
  const float s = (float)(1.0 / (std::sqrt((double)P) + 1e-6));
  for (int64_t i = 0; i < t.size; i++) {
    const int64_t k = t.offset + i;
    const float want = mask[k] == 1.0f ? s : s + lambda * w0[k];
    ASSERT_EQ(g[k], want) << i;
  }
  // other tensors: clipped only
  ASSERT_EQ(g[0], s);
}

TEST(Transform, MaskForwardAndStraightThroughBackward) {
  const std::vector<float> w = {0.9f, -0.1f, 0.4f, -0.7f}, mask = {1, 0, 0, 1}, dwt = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<float> wt(4), dw = {1, 1, 1, 1};
  SIEVE_OK_OR_FAIL(sieve_transform_forward(wt.data(), w.data(), mask.data(), SIEVE_TRANSFORM_MASK, nullptr, 0, 4));
  EXPECT_EQ(wt, (std::vector<float>{0.9f, 0.0f, -0.0f, -0.7f}));
  SIEVE_OK_OR_FAIL(sieve_transform_backward(dw.data(), dwt.data(), w.data(), mask.data(), SIEVE_TRANSFORM_MASK, nullptr, 0, 4));
  EXPECT_EQ(dw, (std::vector<float>{1.1f, 1.2f, 1.3f, 1.4f})) << "dW += dW~, pruned entries included";
  EXPECT_EQ(sieve_transform_forward(wt.data(), w.data(), nullptr, SIEVE_TRANSFORM_MASK, nullptr, 0, 4),
            SIEVE_E_INVALID_ARGUMENT);
}

TEST(LrSchedule, WarmupThenCosine) {
  auto lr = [](int64_t step) {
    double v = -1;
    EXPECT_EQ(sieve_lr_at(&v, step, 1e-3, 1e-4, 10, 110), SIEVE_OK) << sieve_last_error();
    return v;
  };
  EXPECT_DOUBLE_EQ(lr(0), 1e-4);        // peak (0 + 1) / 10
  EXPECT_DOUBLE_EQ(lr(4), 5e-4);
  EXPECT_DOUBLE_EQ(lr(9), 1e-3);        // end of warm-up
  EXPECT_DOUBLE_EQ(lr(10), 1e-3);       // cosine starts at the peak
  EXPECT_NEAR(lr(60), 5.5e-4, 1e-15);   // halfway: (peak + min) / 2
  EXPECT_NEAR(lr(35), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(M_PI * 0.25)), 1e-15);
  EXPECT_DOUBLE_EQ(lr(110), 1e-4);      // the end and beyond: min
  EXPECT_DOUBLE_EQ(lr(5000), 1e-4);
  for (int64_t s = 10; s < 110; s++) EXPECT_GE(lr(s), lr(s + 1));
  double v = 0;
  EXPECT_EQ(sieve_lr_at(&v, 0, 1e-3, 1e-2, 10, 100), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("min must be in [0, peak]"), std::string::npos);
  EXPECT_EQ(sieve_lr_at(&v, 0, 1e-3, 0, 10, 5), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_EQ(sieve_lr_at(&v, 3, 1.0, 0.5, 0, 0), SIEVE_OK);  // no warm-up, no decay: min
  EXPECT_EQ(v, 0.5);
}

TEST(GlobalNorm, IsExactForSimpleVectors) {
  std::vector<float> x(100000, 0.5f);
  double n = 0;
  SIEVE_OK_OR_FAIL(sieve_global_norm(&n, x.data(), (int64_t)x.size()));
  EXPECT_DOUBLE_EQ(n, 0.5 * std::sqrt(100000.0));
}
