// buffers_test.cc — the copy calls of the C ABI (sieve_model_read / _write, by offset and by
// tensor name): bit-exact round trips, the initial values of buffers never written, writes
// seen by the next pass, copies that stay copies, and a clear sentence for every bad range,
// size, buffer or name.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "sieve.h"
#include "util.h"

using namespace testutil;

namespace {

// Floats with awkward bit patterns: NaNs with payloads, -0, subnormals, infinities.
std::vector<float> awkward(int64_t n) {
  const uint32_t specials[] = {0x7fc00001u, 0xffbadbadu, 0x80000000u, 0x00000001u, 0x807fffffu, 0x7f800000u};
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; i++) {
    const uint32_t bits = i < 6 ? specials[i] : (uint32_t)(i * 2654435761u);
    std::memcpy(&v[i], &bits, sizeof bits);
  }
  return v;
}

void expect_error(int status, int want, const std::string& text) {
  EXPECT_EQ(status, want);
  EXPECT_NE(std::string(sieve_last_error()).find(text), std::string::npos)
      << "got: " << sieve_last_error() << "\nwant: " << text;
}

}  // namespace

TEST(Buffers, NeverWrittenBuffersReadAsTheirInitialValues) {
  ModelHandle h(tiny_config(SIEVE_FAMILY_LLAMA));
  const int64_t P = h.num_params();
  for (int32_t which : {SIEVE_BUFFER_PARAMS, SIEVE_BUFFER_GRADS, SIEVE_BUFFER_ADAM_M, SIEVE_BUFFER_ADAM_V}) {
    const std::vector<float> v = h.read(which);
    for (int64_t i = 0; i < P; i++) ASSERT_EQ(v[i], 0.0f) << "buffer " << which << " [" << i << "]";
  }
  const std::vector<float> masks = h.read(SIEVE_BUFFER_MASKS);
  for (int64_t i = 0; i < P; i++) ASSERT_EQ(masks[i], 1.0f) << "masks start at ones";
  // a partial write allocates the buffer with its initial value around the written range
  const std::vector<float> zeros(5, 0.0f);
  SIEVE_OK_OR_FAIL(sieve_model_write(h.m, SIEVE_BUFFER_MASKS, 10, 5, zeros.data()));
  const std::vector<float> after = h.read(SIEVE_BUFFER_MASKS);
  for (int64_t i = 0; i < P; i++) ASSERT_EQ(after[i], i >= 10 && i < 15 ? 0.0f : 1.0f) << i;
}

TEST(Buffers, WriteThenReadIsBitExactInEveryBuffer) {
  ModelHandle h(tiny_config(SIEVE_FAMILY_GPT2));
  const int64_t P = h.num_params();
  for (int32_t which = SIEVE_BUFFER_PARAMS; which <= SIEVE_BUFFER_ADAM_V; which++) {
    std::vector<float> v = awkward(P);
    v[0] = (float)which;  // a different content per buffer: the buffers are distinct
    h.write(which, v);
  }
  for (int32_t which = SIEVE_BUFFER_PARAMS; which <= SIEVE_BUFFER_ADAM_V; which++) {
    std::vector<float> want = awkward(P);
    want[0] = (float)which;
    EXPECT_TRUE(same_bits(h.read(which).data(), want.data(), P)) << "buffer " << which;
  }
  // a range in the middle
  std::vector<float> part(7);
  SIEVE_OK_OR_FAIL(sieve_model_read(h.m, SIEVE_BUFFER_ADAM_M, 100, 7, part.data()));
  EXPECT_TRUE(same_bits(part.data(), awkward(P).data() + 100, 7));
  // count 0 needs no pointer
  SIEVE_OK_OR_FAIL(sieve_model_read(h.m, SIEVE_BUFFER_PARAMS, P, 0, nullptr));
  SIEVE_OK_OR_FAIL(sieve_model_write(h.m, SIEVE_BUFFER_PARAMS, 0, 0, nullptr));
}

TEST(Buffers, ByNameIsTheTensorsSliceOfTheFlatBuffer) {
  ModelHandle h(tiny_config(SIEVE_FAMILY_GPT2));
  const sieve_tensor_info t = h.tensors()[h.index("blocks.1.mlp.fc.weight")];
  const std::vector<float> data = randn(t.size, 3);
  SIEVE_OK_OR_FAIL(sieve_model_write_tensor(h.m, t.name, SIEVE_BUFFER_GRADS, data.data(), t.size));
  const std::vector<float> flat = h.read(SIEVE_BUFFER_GRADS);
  EXPECT_TRUE(same_bits(flat.data() + t.offset, data.data(), t.size));
  EXPECT_EQ(flat[t.offset - 1], 0.0f);
  EXPECT_EQ(flat[t.offset + t.size], 0.0f);
  std::vector<float> back(t.size);
  SIEVE_OK_OR_FAIL(sieve_model_read_tensor(h.m, t.name, SIEVE_BUFFER_GRADS, back.data(), t.size));
  EXPECT_TRUE(same_bits(back.data(), data.data(), t.size));
}

// The model holds its own numbers: a write is what the next pass reads, and what a read
// returned is a copy that later calls do not change.
TEST(Buffers, AWriteIsSeenByTheNextPassAndAReadIsACopy) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_LLAMA);
  ModelHandle h(cfg);
  SIEVE_OK_OR_FAIL(sieve_model_init(h.m, 3));
  const int64_t B = 2, T = 8, V = cfg.vocab;
  const auto tokens = randint(B * T, (int32_t)V, 4);
  std::vector<float> logits(B * T * V);
  const std::vector<float> before = h.read(SIEVE_BUFFER_PARAMS);
  SIEVE_OK_OR_FAIL(sieve_model_logits(h.m, logits.data(), tokens.data(), B, T, nullptr, nullptr));
  bool nonzero = false;
  for (float x : logits) nonzero = nonzero || x != 0.0f;
  EXPECT_TRUE(nonzero);
  // a zero LM head makes every logit exactly zero
  const std::vector<float> zeros(V * cfg.dim, 0.0f);
  SIEVE_OK_OR_FAIL(sieve_model_write_tensor(h.m, "lm_head.weight", SIEVE_BUFFER_PARAMS, zeros.data(), V * cfg.dim));
  SIEVE_OK_OR_FAIL(sieve_model_logits(h.m, logits.data(), tokens.data(), B, T, nullptr, nullptr));
  for (float x : logits) ASSERT_EQ(x, 0.0f);
  // `before` was copied out: the write did not reach it
  const int64_t head = h.offset("lm_head.weight");
  EXPECT_NE(before[head], 0.0f);
  // and a training step moves the model's parameters, not a copy read earlier
  std::vector<float> copy = h.read(SIEVE_BUFFER_PARAMS);
  const std::vector<float> copy0 = copy;
  sieve_loss out{};
  const sieve_loss_opts lo{1.0f, 0.0f, 1.0f};
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(h.m, &out, tokens.data(), tokens.data(), nullptr, &lo, B, T));
  float norm = 0;
  const sieve_optim_opts oo{1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.0f, 0};
  SIEVE_OK_OR_FAIL(sieve_model_optimizer_step(h.m, &norm, &oo));
  EXPECT_TRUE(same_bits(copy.data(), copy0.data(), h.num_params()));
  EXPECT_FALSE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), copy0.data(), h.num_params()));
}

TEST(Buffers, BadRangesSizesBuffersAndNamesAreClearErrors) {
  ModelHandle h(tiny_config(SIEVE_FAMILY_GPT2));
  const int64_t P = h.num_params();
  std::vector<float> v(P + 1);
  const std::string p = std::to_string(P);
  expect_error(sieve_model_read(h.m, 9, 0, 1, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "unknown buffer 9: expected params (0), grads (1), masks (2), m (3) or v (4)");
  expect_error(sieve_model_write(h.m, -1, 0, 1, v.data()), SIEVE_E_INVALID_ARGUMENT, "unknown buffer -1");
  expect_error(sieve_model_read(h.m, SIEVE_BUFFER_PARAMS, -1, 1, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "offset must be >= 0, got -1");
  expect_error(sieve_model_read(h.m, SIEVE_BUFFER_PARAMS, 0, -2, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "count must be >= 0, got -2");
  expect_error(sieve_model_read(h.m, SIEVE_BUFFER_GRADS, 0, P + 1, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "[0, 0 + " + std::to_string(P + 1) + ") is outside the buffer of P = " + p + " floats");
  expect_error(sieve_model_write(h.m, SIEVE_BUFFER_GRADS, P - 1, 2, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "is outside the buffer of P = " + p);
  expect_error(sieve_model_read(h.m, SIEVE_BUFFER_PARAMS, 0, 1, nullptr), SIEVE_E_INVALID_ARGUMENT, "dst is NULL");
  expect_error(sieve_model_write(h.m, SIEVE_BUFFER_PARAMS, 0, 1, nullptr), SIEVE_E_INVALID_ARGUMENT, "src is NULL");
  expect_error(sieve_model_read(nullptr, SIEVE_BUFFER_PARAMS, 0, 1, v.data()), SIEVE_E_INVALID_ARGUMENT,
               "model is NULL");
  // by name: the name and both sizes
  expect_error(sieve_model_read_tensor(h.m, "blocks.5.mlp.fc.weight", SIEVE_BUFFER_PARAMS, v.data(), 1),
               SIEVE_E_INVALID_ARGUMENT, "this model has no tensor named 'blocks.5.mlp.fc.weight'");
  expect_error(sieve_model_write_tensor(h.m, "blocks.0.norm1.weight", SIEVE_BUFFER_MASKS, v.data(), 15),
               SIEVE_E_INVALID_ARGUMENT, "tensor 'blocks.0.norm1.weight' has 16 floats, but count is 15");
  expect_error(sieve_model_read_tensor(h.m, "blocks.0.norm1.weight", 5, v.data(), 16), SIEVE_E_INVALID_ARGUMENT,
               "unknown buffer 5");
  expect_error(sieve_model_read_tensor(h.m, nullptr, SIEVE_BUFFER_PARAMS, v.data(), 16), SIEVE_E_INVALID_ARGUMENT,
               "name is NULL");
  // nothing was written by the refused calls
  for (float x : h.read(SIEVE_BUFFER_MASKS)) ASSERT_EQ(x, 1.0f);
  for (float x : h.read(SIEVE_BUFFER_GRADS)) ASSERT_EQ(x, 0.0f);
}
