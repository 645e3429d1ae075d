// determinism_test.cc — same seed and inputs give the same bits: across runs, across
// thread counts (1 vs 2), and whether training keeps the attention probabilities or recomputes
// them in the backward (SIEVE_CPU_ATTENTION), for training (losses, gradient norms, weights,
// both moments) and for evaluation. The model is large enough that the engine splits its GEMMs and
// spreads attention heads and norm chunks over the threads.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "sieve.h"
#include "util.h"

using namespace testutil;

namespace {

struct RunResult {
  std::vector<double> losses;
  std::vector<float> norms, params, m, v, nll;
};

sieve_config split_config(int32_t family) {
  sieve_config c = tiny_config(family);
  c.dim = 64;
  c.heads = 4;
  c.context = 80;
  c.vocab = 50;
  c.mlp_hidden = 256;
  return c;
}

RunResult train(int32_t family, int32_t threads) {
  const sieve_config cfg = split_config(family);
  ModelHandle h(cfg);
  RunResult r;
  EXPECT_EQ(sieve_model_set_threads(h.m, threads), SIEVE_OK);
  EXPECT_EQ(sieve_model_init(h.m, 1234), SIEVE_OK);
  const int64_t B = 4, T = 80;
  const auto data = randint(B * T + 1, (int32_t)cfg.vocab, 99);  // one batch, seen every step
  const sieve_loss_opts lo{1.0f, 0.0f, 1.0f};
  const sieve_optim_opts oo{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 0};
  for (int step = 0; step < 3; step++) {
    EXPECT_EQ(sieve_model_zero_grad(h.m), SIEVE_OK);
    const int32_t* x = data.data();
    sieve_loss out{};
    EXPECT_EQ(sieve_model_forward_backward(h.m, &out, x, x + 1, nullptr, &lo, B, T), SIEVE_OK) << sieve_last_error();
    float norm = 0;
    EXPECT_EQ(sieve_model_optimizer_step(h.m, &norm, &oo), SIEVE_OK);
    r.losses.push_back(out.loss);
    r.norms.push_back(norm);
  }
  r.params = h.read(SIEVE_BUFFER_PARAMS);
  r.m = h.read(SIEVE_BUFFER_ADAM_M);
  r.v = h.read(SIEVE_BUFFER_ADAM_V);
  r.nll.resize(B * (T - 1));
  EXPECT_EQ(sieve_model_eval_nll(h.m, r.nll.data(), data.data(), B, T, nullptr, nullptr), SIEVE_OK);
  return r;
}

void expect_identical(const RunResult& a, const RunResult& b) {
  EXPECT_EQ(a.losses, b.losses);
  EXPECT_TRUE(same_bits(a.norms.data(), b.norms.data(), (int64_t)a.norms.size()));
  EXPECT_TRUE(same_bits(a.params.data(), b.params.data(), (int64_t)a.params.size()));
  EXPECT_TRUE(same_bits(a.m.data(), b.m.data(), (int64_t)a.m.size()));
  EXPECT_TRUE(same_bits(a.v.data(), b.v.data(), (int64_t)a.v.size()));
  EXPECT_TRUE(same_bits(a.nll.data(), b.nll.data(), (int64_t)a.nll.size()));
}

class DeterminismTest : public ::testing::TestWithParam<int32_t> {};

}  // namespace

TEST_P(DeterminismTest, SameBitsAcrossRunsAndThreadCounts) {
  const RunResult one = train(GetParam(), 1);
  const RunResult two = train(GetParam(), 2);
  const RunResult again = train(GetParam(), 2);
  expect_identical(one, two);
  expect_identical(two, again);
  EXPECT_LT(one.losses.back(), one.losses.front());  // and it learns the batch
}

// SIEVE_CPU_ATTENTION for the models made while it lives.
struct AttentionMode {
  explicit AttentionMode(const char* mode) { setenv("SIEVE_CPU_ATTENTION", mode, 1); }
  ~AttentionMode() { unsetenv("SIEVE_CPU_ATTENTION"); }
};

TEST_P(DeterminismTest, RecomputedAttentionProbabilitiesAreTheKeptOnesBits) {
  RunResult kept, recomputed;
  {
    AttentionMode mode("keep");
    kept = train(GetParam(), 2);
  }
  {
    AttentionMode mode("recompute");
    recomputed = train(GetParam(), 2);
  }
  expect_identical(kept, recomputed);
  const RunResult automatic = train(GetParam(), 2);  // small enough to keep
  expect_identical(kept, automatic);
}

TEST(AttentionMode, AnUnknownModeIsRefusedNamingTheVariable) {
  AttentionMode mode("sometimes");
  sieve_model* m = nullptr;
  const sieve_config cfg = split_config(SIEVE_FAMILY_GPT2);
  EXPECT_EQ(sieve_model_create(&m, &cfg, SIEVE_DEVICE_CPU), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(sieve_last_error()).find("SIEVE_CPU_ATTENTION=sometimes: expected auto, keep or recompute"),
            std::string::npos)
      << sieve_last_error();
}

INSTANTIATE_TEST_SUITE_P(Families, DeterminismTest, ::testing::Values(SIEVE_FAMILY_GPT2, SIEVE_FAMILY_LLAMA),
                         [](const auto& info) { return info.param == SIEVE_FAMILY_GPT2 ? "gpt2" : "llama"; });
