// config_test.cc — bad configs are rejected with a message that names the problem.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "sieve.h"
#include "util.h"

using namespace testutil;

namespace {

void expect_rejected(const std::function<void(sieve_config&)>& edit, const std::string& message,
                     int32_t family = SIEVE_FAMILY_GPT2) {
  sieve_config c = tiny_config(family);
  edit(c);
  EXPECT_EQ(sieve_config_check(&c), SIEVE_E_INVALID_ARGUMENT) << message;
  EXPECT_NE(std::string(sieve_last_error()).find(message), std::string::npos)
      << "got: " << sieve_last_error() << "\nwant: " << message;
  sieve_model* m = reinterpret_cast<sieve_model*>(0x1);
  EXPECT_EQ(sieve_model_create(&m, &c), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
}

}  // namespace

TEST(Config, GoodConfigsPass) {
  for (int32_t f : {SIEVE_FAMILY_GPT2, SIEVE_FAMILY_LLAMA}) {
    sieve_config c = tiny_config(f);
    EXPECT_EQ(sieve_config_check(&c), SIEVE_OK) << sieve_last_error();
  }
}

TEST(Config, BadConfigsAreRejectedWithClearMessages) {
  expect_rejected([](sieve_config& c) { c.heads = 3; }, "heads (3) must divide dim (16)");
  expect_rejected([](sieve_config& c) { c.layers = 0; }, "layers must be at least 1, got 0");
  expect_rejected([](sieve_config& c) { c.context = 0; }, "context must be at least 1, got 0");
  expect_rejected([](sieve_config& c) { c.family = 7; }, "unknown model family 7");
  expect_rejected([](sieve_config& c) { c.vocab = 1; }, "vocab must be at least 2, got 1");
  expect_rejected([](sieve_config& c) { c.dim = 0; }, "dim must be at least 1, got 0");
  expect_rejected([](sieve_config& c) { c.heads = 0; }, "heads must be at least 1, got 0");
  expect_rejected([](sieve_config& c) { c.mlp_hidden = 0; }, "mlp_hidden must be at least 1, got 0");
  expect_rejected([](sieve_config& c) { c.norm_eps = 0.0f; }, "norm_eps must be a finite number > 0");
  expect_rejected([](sieve_config& c) { c.rope_theta = 10000.0f; }, "rope_theta must be unset (0) for gpt2");
  expect_rejected([](sieve_config& c) { c.heads = 16; }, "head size dim/heads = 1 must be even for RoPE",
                  SIEVE_FAMILY_LLAMA);
  expect_rejected([](sieve_config& c) { c.rope_theta = 0.0f; }, "rope_theta must be a finite number > 0 for llama",
                  SIEVE_FAMILY_LLAMA);
  expect_rejected([](sieve_config& c) { c.dim = 1 << 20, c.heads = 1, c.vocab = 1 << 20; }, "parameters; at most");
}

TEST(Config, NullPointersAreErrorsNotCrashes) {
  EXPECT_EQ(sieve_config_check(nullptr), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_STREQ(sieve_last_error(), "config is NULL");
  int64_t n = 0;
  EXPECT_EQ(sieve_model_num_params(nullptr, &n), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_STREQ(sieve_last_error(), "model is NULL");
  sieve_model_destroy(nullptr);
}

TEST(Backend, ReportsItself) {
  sieve_backend_info info{};
  SIEVE_OK_OR_FAIL(sieve_backend(&info));
  EXPECT_EQ(info.abi_version, SIEVE_ABI_VERSION);
  EXPECT_STREQ(info.name, "cpu");
  EXPECT_GE(info.default_threads, 1);
}
