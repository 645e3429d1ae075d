// config_test.cc — bad configs are rejected with a message that names the problem; the
// backends: the CPU one describes itself, a device this build lacks is SIEVE_E_UNAVAILABLE.
#include <cstdlib>
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
  EXPECT_EQ(sieve_model_create(&m, &c, SIEVE_DEVICE_CPU), SIEVE_E_INVALID_ARGUMENT);
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
  SIEVE_OK_OR_FAIL(sieve_backend(SIEVE_DEVICE_CPU, &info));
  EXPECT_EQ(info.abi_version, SIEVE_ABI_VERSION);
  EXPECT_EQ(info.abi_version, 6);
  EXPECT_STREQ(info.name, "cpu");
  EXPECT_GE(info.default_threads, 1);
  ModelHandle h(tiny_config(SIEVE_FAMILY_GPT2));
  int32_t device = -1, threads = 0;
  SIEVE_OK_OR_FAIL(sieve_model_device(h.m, &device));
  EXPECT_EQ(device, SIEVE_DEVICE_CPU);
  SIEVE_OK_OR_FAIL(sieve_model_get_threads(h.m, &threads));
  EXPECT_EQ(threads, info.default_threads) << "a new model gets its backend's default thread count";
}

// This build has no CUDA backend: asking for one is a status of its own and a sentence
// that says what to do, never a crash or a silent CPU model.
TEST(Backend, CudaIsUnavailableWithoutItsLibrary) {
  // Where no libsieve_cuda.so is (read on the first request for cuda; the answer is kept).
  setenv("SIEVE_CUDA_LIBRARY", "/nonexistent/libsieve_cuda.so", 1);
  sieve_backend_info info{};
  EXPECT_EQ(sieve_backend(SIEVE_DEVICE_CUDA, &info), SIEVE_E_UNAVAILABLE);
  EXPECT_STREQ(sieve_last_error(),
               "this build of sieve has no CUDA backend (no libsieve_cuda.so at /nonexistent/libsieve_cuda.so; build "
               "it with kernels/cuda/build.sh where nvcc exists, or set SIEVE_CUDA_LIBRARY); use device cpu");
  const sieve_config c = tiny_config(SIEVE_FAMILY_GPT2);
  sieve_model* m = reinterpret_cast<sieve_model*>(0x1);
  EXPECT_EQ(sieve_model_create(&m, &c, SIEVE_DEVICE_CUDA), SIEVE_E_UNAVAILABLE);
  EXPECT_EQ(m, nullptr);
  EXPECT_NE(std::string(sieve_last_error()).find("no CUDA backend"), std::string::npos);
  EXPECT_EQ(sieve_model_create(&m, &c, 7), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_STREQ(sieve_last_error(), "unknown device 7: expected cpu (0) or cuda (1)");
  EXPECT_EQ(sieve_backend(-1, &info), SIEVE_E_INVALID_ARGUMENT);
}
