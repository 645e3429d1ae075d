// rules_test.cc — the update rules of the 2:4 methods: AST's Adam (METHODS 4.3) and CAST's
// AdamS (METHODS 5.3), op by op against reference implementations written here from the
// formulas (several steps, masks changing, lambda and alpha varying), their worked examples
// and the "not stock AdamW" properties; then the same rules inside a model's optimizer step.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sieve.h"
#include "util.h"

using namespace testutil;

namespace {

// The float hyperparameters as the kernels receive them.
struct Hyper {
  float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
};

// The state of the float64 reference.
struct RefState {
  std::vector<double> w, m, v;
};

// METHODS 4.3, literally (t is 1-based).
void ref_ast(RefState& s, const std::vector<float>& g, const std::vector<float>& mask, const Hyper& h, double wd,
             double lambda, int t) {
  const double lr = h.lr, b1 = h.beta1, b2 = h.beta2, eps = h.eps;
  for (size_t i = 0; i < g.size(); i++) {
    s.w[i] *= 1 - lr * wd;
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    const double u = s.m[i] + lambda * (1 - mask[i]) * s.w[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * u * u;
    s.w[i] -= (lr / (1 - std::pow(b1, t))) * u / (std::sqrt(s.v[i] / (1 - std::pow(b2, t))) + eps);
  }
}

// METHODS 5.3, literally: t here is the 1-based step (the document's t + 1).
void ref_adams(RefState& s, const std::vector<float>& g, const std::vector<float>& mask, const Hyper& h, double alpha,
               double lambda, int t) {
  const double lr = h.lr, b1 = h.beta1, b2 = h.beta2, eps = h.eps;
  for (size_t i = 0; i < g.size(); i++) {
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    const double sign = s.w[i] > 0 ? 1.0 : s.w[i] < 0 ? -1.0 : 0.0;
    const double u = mask[i] == 0 ? (1 - alpha) * s.m[i] + alpha * lambda * sign : s.m[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * u * u;
    s.w[i] -= lr * (u / (1 - std::pow(b1, t))) / (std::sqrt(s.v[i] / (1 - std::pow(b2, t))) + eps);
  }
}

// Weights with |w| in [0.3, ~1]: a few small steps never carry one across 0.
std::vector<float> away_from_zero(int64_t n, uint32_t seed) {
  std::vector<float> w = randn(n, seed);
  for (float& x : w) x = std::copysign(0.3f + 0.2f * std::fabs(x), x);
  return w;
}

std::vector<float> random_mask(int64_t n, uint32_t seed) {
  std::vector<float> w = randn(n, seed), m(n);
  EXPECT_EQ(sieve_mask24_magnitude(m.data(), w.data(), 1, n), SIEVE_OK) << sieve_last_error();
  return m;
}

}  // namespace

TEST(AstRule, FollowsTheReferenceOverSeveralStepsWithChangingMasksAndLambda) {
  const int64_t n = 256;
  const Hyper h;
  const float wd = 0.1f;
  std::vector<float> w = randn(n, 1, 0.5f), m(n, 0.0f), v(n, 0.0f);
  RefState ref{to_double(w), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  for (int t = 1; t <= 6; t++) {
    const auto g = randn(n, 10 + t, 0.01f);
    const auto mask = random_mask(n, 20 + t / 2);  // the mask changes every other step
    const float lambda = 2e-3f * (float)t;         // ramped, as ARS-STE does
    SIEVE_OK_OR_FAIL(sieve_ast_update(w.data(), m.data(), v.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, wd, lambda, t, n));
    ref_ast(ref, g, mask, h, wd, lambda, t);
    ASSERT_TRUE(close(w, ref.w, 1e-6, "w")) << "step " << t;
    ASSERT_TRUE(close(m, ref.m, 1e-6, "m")) << "step " << t;
    ASSERT_TRUE(close(v, ref.v, 1e-5, "v")) << "step " << t;
  }
}

// The first moment holds loss gradients only, and kept weights do not see lambda: the same
// steps with lambda = 0 and lambda > 0 give bit-identical m, and identical kept weights.
TEST(AstRule, LambdaStaysOutOfTheFirstMomentAndOffKeptWeights) {
  const int64_t n = 128;
  const Hyper h;
  const auto w0 = randn(n, 2, 0.5f);
  const auto mask = random_mask(n, 3);
  std::vector<float> wa = w0, ma(n, 0), va(n, 0), wb = w0, mb(n, 0), vb(n, 0);
  for (int t = 1; t <= 4; t++) {
    const auto g = randn(n, 30 + t, 0.01f);
    SIEVE_OK_OR_FAIL(sieve_ast_update(wa.data(), ma.data(), va.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, 0.1f, 0.0f, t, n));
    SIEVE_OK_OR_FAIL(sieve_ast_update(wb.data(), mb.data(), vb.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, 0.1f, 0.05f, t, n));
  }
  EXPECT_TRUE(same_bits(ma.data(), mb.data(), n)) << "m is the momentum of g whatever lambda";
  int64_t pruned_moved = 0;
  for (int64_t i = 0; i < n; i++) {
    if (mask[i] == 1.0f) {
      ASSERT_TRUE(same_bits(&wa[i], &wb[i], 1)) << "kept weight " << i << " saw lambda";
      ASSERT_TRUE(same_bits(&va[i], &vb[i], 1));
    } else {
      pruned_moved += wa[i] != wb[i];
    }
  }
  EXPECT_EQ(pruned_moved, n / 2) << "every pruned weight feels the decay";
}

// With g = 0, the decay alone shrinks every pruned |w| step after step; kept weights stay put.
TEST(AstRule, PrunedWeightsShrinkWithoutAGradient) {
  const int64_t n = 64;
  const Hyper h{1e-3f, 0.9f, 0.95f, 1e-8f};
  std::vector<float> w = away_from_zero(n, 4), m(n, 0), v(n, 0), g(n, 0.0f);
  const auto mask = random_mask(n, 5);
  const auto w0 = w;
  std::vector<float> prev = w;
  for (int t = 1; t <= 20; t++) {
    SIEVE_OK_OR_FAIL(sieve_ast_update(w.data(), m.data(), v.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, 0.0f, 0.1f, t, n));
    for (int64_t i = 0; i < n; i++) {
      if (mask[i] == 1.0f)
        ASSERT_EQ(w[i], w0[i]) << i;
      else
        ASSERT_LT(std::fabs(w[i]), std::fabs(prev[i])) << i << " at step " << t;
    }
    prev = w;
  }
}

// Not stock AdamW: even with lambda = 0 and no decay the second moment accumulates the squared
// momentum, so after one step v = (1 - b2) ((1 - b1) g)^2 rather than (1 - b2) g^2.
TEST(AstRule, IsNotStockAdamW) {
  const int64_t n = 32;
  const Hyper h;
  const auto g = randn(n, 6, 0.01f);
  const std::vector<float> ones(n, 1.0f);
  std::vector<float> w1 = randn(n, 7), m1(n, 0), v1(n, 0), w2 = w1, m2(n, 0), v2(n, 0);
  SIEVE_OK_OR_FAIL(sieve_ast_update(w1.data(), m1.data(), v1.data(), g.data(), ones.data(), h.lr, h.beta1, h.beta2,
                                    h.eps, 0.0f, 0.0f, 1, n));
  SIEVE_OK_OR_FAIL(sieve_adamw_update(w2.data(), m2.data(), v2.data(), g.data(), h.lr, h.beta1, h.beta2, h.eps, 0.0f, 1, n));
  for (int64_t i = 0; i < n; i++) {
    const double mg = (1 - (double)h.beta1) * g[i];
    EXPECT_NEAR(v1[i], (1 - (double)h.beta2) * mg * mg, 1e-6 * (1 - (double)h.beta2) * mg * mg) << i;
    EXPECT_NEAR(v2[i], (1 - (double)h.beta2) * (double)g[i] * g[i], 1e-6 * (double)g[i] * g[i]) << i;
    EXPECT_NE(w1[i], w2[i]) << i;
  }
}

TEST(AdamsRule, FollowsTheReferenceOverSeveralStepsWithChangingMasksAndAlpha) {
  const int64_t n = 256;
  const Hyper h{2e-3f, 0.9f, 0.999f, 1e-8f};
  std::vector<float> w = randn(n, 8, 0.5f), m(n, 0.0f), v(n, 0.0f);
  w[5] = 0.0f;  // sign(0) = 0
  RefState ref{to_double(w), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  const int steps = 8;
  for (int t = 1; t <= steps; t++) {
    const auto g = randn(n, 40 + t, 1e-3f);
    const auto mask = random_mask(n, 50 + t / 3);
    const float alpha = (float)(t - 1) / (float)(steps - 1);  // the linear ramp 0 -> 1
    const float lambda = 5e-4f;
    SIEVE_OK_OR_FAIL(sieve_adams_update(w.data(), m.data(), v.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                        h.eps, alpha, lambda, t, n));
    ref_adams(ref, g, mask, h, alpha, lambda, t);
    ASSERT_TRUE(close(w, ref.w, 1e-6, "w")) << "step " << t;
    ASSERT_TRUE(close(m, ref.m, 1e-6, "m")) << "step " << t;
    ASSERT_TRUE(close(v, ref.v, 1e-5, "v")) << "step " << t;
  }
}

// METHODS 5.3: a pruned theta = 0.4, g = 0.01, mu_{t-1} = 0, b1 = 0.9, lambda = 4e-7,
// alpha = 0.5: mu = 0.001 and mu~ = 0.5 * 0.001 + 0.5 * 4e-7 = 5.002e-4 (seen through v, which
// starts at 0: v = (1 - b2) mu~^2).
TEST(AdamsRule, WorkedExample) {
  const Hyper h{2e-5f, 0.9f, 0.999f, 1e-8f};
  std::vector<float> w = {0.4f}, m = {0.0f}, v = {0.0f}, g = {0.01f}, mask = {0.0f};
  SIEVE_OK_OR_FAIL(sieve_adams_update(w.data(), m.data(), v.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, 0.5f, 4e-7f, 1, 1));
  EXPECT_NEAR(m[0], 0.001, 1e-9) << "mu is the raw-gradient momentum";
  const double mu_tilde = std::sqrt(v[0] / (1 - (double)h.beta2));
  EXPECT_NEAR(mu_tilde, 5.002e-4, 1e-9);
  EXPECT_LT(w[0], 0.4f) << "pushed towards 0";
}

// At alpha = 0 pruned and kept weights follow one rule (the mask changes nothing, bit for bit);
// it is still not AdamW: v holds mu^2, not g^2.
TEST(AdamsRule, AtAlphaZeroTheMaskChangesNothingAndItIsNotAdamW) {
  const int64_t n = 64;
  const Hyper h;
  const auto w0 = randn(n, 9, 0.5f);
  const auto mask = random_mask(n, 10);
  const std::vector<float> ones(n, 1.0f);
  std::vector<float> wa = w0, ma(n, 0), va(n, 0), wb = w0, mb(n, 0), vb(n, 0);
  for (int t = 1; t <= 3; t++) {
    const auto g = randn(n, 60 + t, 0.01f);
    SIEVE_OK_OR_FAIL(sieve_adams_update(wa.data(), ma.data(), va.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                        h.eps, 0.0f, 0.3f, t, n));
    SIEVE_OK_OR_FAIL(sieve_adams_update(wb.data(), mb.data(), vb.data(), g.data(), ones.data(), h.lr, h.beta1, h.beta2,
                                        h.eps, 0.0f, 0.3f, t, n));
  }
  EXPECT_TRUE(same_bits(wa.data(), wb.data(), n));
  EXPECT_TRUE(same_bits(va.data(), vb.data(), n));
  std::vector<float> w = w0, m(n, 0), v(n, 0), wa2 = w0, ma2(n, 0), va2(n, 0);
  const auto g = randn(n, 70, 0.01f);
  SIEVE_OK_OR_FAIL(sieve_adams_update(w.data(), m.data(), v.data(), g.data(), ones.data(), h.lr, h.beta1, h.beta2,
                                      h.eps, 0.0f, 0.0f, 1, n));
  SIEVE_OK_OR_FAIL(sieve_adamw_update(wa2.data(), ma2.data(), va2.data(), g.data(), h.lr, h.beta1, h.beta2, h.eps, 0.0f, 1, n));
  for (int64_t i = 0; i < n; i++) {
    const double mu = (1 - (double)h.beta1) * g[i];
    EXPECT_NEAR(v[i], (1 - (double)h.beta2) * mu * mu, 1e-6 * (1 - (double)h.beta2) * mu * mu) << i;
    EXPECT_NE(v[i], va2[i]) << i;
  }
}

// With g = 0 and alpha = 1, pruned |theta| falls monotonically (towards 0, never past it at this
// step size) and kept theta does not move; a weight at exactly 0 stays there.
TEST(AdamsRule, WithoutAGradientPrunedWeightsDecayUniformlyAndKeptOnesStay) {
  const int64_t n = 64;
  const Hyper h{1e-3f, 0.9f, 0.999f, 1e-8f};
  std::vector<float> w = away_from_zero(n, 11), m(n, 0), v(n, 0), g(n, 0.0f);
  const auto mask = random_mask(n, 12);
  int64_t zero_pruned = -1;
  for (int64_t i = 0; i < n && zero_pruned < 0; i++)
    if (mask[i] == 0.0f) zero_pruned = i;
  w[zero_pruned] = 0.0f;
  const auto w0 = w;
  std::vector<float> prev = w;
  for (int t = 1; t <= 20; t++) {
    SIEVE_OK_OR_FAIL(sieve_adams_update(w.data(), m.data(), v.data(), g.data(), mask.data(), h.lr, h.beta1, h.beta2,
                                        h.eps, 1.0f, 1e-3f, t, n));
    for (int64_t i = 0; i < n; i++) {
      if (mask[i] == 1.0f || i == zero_pruned) {
        ASSERT_EQ(w[i], w0[i]) << i;
      } else {
        ASSERT_LT(std::fabs(w[i]), std::fabs(prev[i])) << i << " at step " << t;
        ASSERT_EQ(std::signbit(w[i]), std::signbit(w0[i])) << "never past 0";
      }
    }
    prev = w;
  }
}

TEST(Rules, RejectBadHyperparameters) {
  std::vector<float> w(4), m(4), v(4), g(4), mask(4, 1.0f);
  EXPECT_EQ(sieve_adams_update(w.data(), m.data(), v.data(), g.data(), mask.data(), 1e-3f, 0.9f, 0.99f, 1e-8f, 1.5f,
                               0.0f, 1, 4),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("alpha must be in [0, 1]"), std::string::npos);
  EXPECT_EQ(sieve_ast_update(w.data(), m.data(), v.data(), g.data(), mask.data(), 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f,
                             -1.0f, 1, 4),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_EQ(sieve_ast_update(w.data(), m.data(), v.data(), g.data(), nullptr, 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f, 0.0f,
                             1, 4),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_EQ(sieve_ast_update(w.data(), m.data(), v.data(), g.data(), mask.data(), 1e-3f, 0.9f, 0.99f, 1e-8f, 0.0f,
                             0.0f, 0, 4),
            SIEVE_E_INVALID_ARGUMENT);
}

// ---------------------------------------------------------------- inside the model

// A model's optimizer step with AST on one tensor and AdamS on another is, bit for bit, the op
// on those tensors' gradients, masks and moments (AST with the decoupled decay of a matrix,
// AdamS without any); the other tensors get AdamW.
TEST(Rules, InTheModelTheStepIsTheOpOnEachTensor) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  randomize_params(h, 13);
  const int64_t P = h.num_params();
  const int64_t ast = h.index("blocks.0.mlp.fc.weight"), adams = h.index("blocks.1.attn.qkv.weight");
  const float lambda = 0.02f, ab[2] = {0.25f, 0.01f};
  SIEVE_OK_OR_FAIL(sieve_model_set_update_rule(h.m, ast, SIEVE_RULE_AST, &lambda, 1));
  SIEVE_OK_OR_FAIL(sieve_model_set_update_rule(h.m, adams, SIEVE_RULE_ADAMS, ab, 2));
  std::vector<float> masks(P, 1.0f);
  const std::vector<float> p0 = h.read(SIEVE_BUFFER_PARAMS);
  for (int64_t idx : {ast, adams}) {
    const sieve_tensor_info t = h.tensors()[idx];
    SIEVE_OK_OR_FAIL(sieve_mask24_magnitude(masks.data() + t.offset, p0.data() + t.offset, t.shape[0], t.shape[1]));
  }
  h.write(SIEVE_BUFFER_MASKS, masks);
  const sieve_optim_opts o{1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.0f, 0};
  std::vector<float> w = h.read(SIEVE_BUFFER_PARAMS), m(P, 0.0f), v(P, 0.0f);
  for (int t = 1; t <= 3; t++) {
    const auto g = randn(P, 80 + t, 0.01f);
    h.write(SIEVE_BUFFER_GRADS, g);
    float norm = 0;
    SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &o));
    for (const sieve_tensor_info& ti : h.tensors()) {
      float* pw = w.data() + ti.offset;
      float* pm = m.data() + ti.offset;
      float* pv = v.data() + ti.offset;
      const float* pg = g.data() + ti.offset;
      const float* pk = masks.data() + ti.offset;
      if (ti.offset == h.tensors()[ast].offset)
        SIEVE_OK_OR_FAIL(sieve_ast_update(pw, pm, pv, pg, pk, o.lr, o.beta1, o.beta2, o.eps, 0.1f, lambda, t, ti.size));
      else if (ti.offset == h.tensors()[adams].offset)
        SIEVE_OK_OR_FAIL(sieve_adams_update(pw, pm, pv, pg, pk, o.lr, o.beta1, o.beta2, o.eps, ab[0], ab[1], t, ti.size));
      else
        SIEVE_OK_OR_FAIL(sieve_adamw_update(pw, pm, pv, pg, o.lr, o.beta1, o.beta2, o.eps, ti.decay ? 0.1f : 0.0f, t,
                                            ti.size));
    }
    ASSERT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), w.data(), P)) << "step " << t;
    ASSERT_TRUE(same_bits(h.read(SIEVE_BUFFER_ADAM_M).data(), m.data(), P)) << "step " << t;
    ASSERT_TRUE(same_bits(h.read(SIEVE_BUFFER_ADAM_V).data(), v.data(), P)) << "step " << t;
  }
  // parameter checks name the tensor
  const float two[2] = {2.0f, 0.0f};
  EXPECT_EQ(sieve_model_set_update_rule(h.m, adams, SIEVE_RULE_ADAMS, two, 2), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("adams alpha of tensor 'blocks.1.attn.qkv.weight' must be in [0, 1]"),
            std::string::npos)
      << sieve_last_error();
  EXPECT_EQ(sieve_model_set_update_rule(h.m, ast, SIEVE_RULE_AST, nullptr, 0), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("takes one parameter (lambda)"), std::string::npos);
}
