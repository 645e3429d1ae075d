// model_test.cc — the whole model of each family against the float64 reference: logits,
// per-token NLL and loss; every parameter's gradient against central finite differences
// of the reference loss (with and without a distillation teacher); the tensor table; the
// mask transform's forward and straight-through backward; gradient accumulation.
//
// Tolerances: the tiny models (2 layers, C = 16) have O(1) activations, and float32
// rounding through them stays near 1e-6 relative. Forward values are held to 1e-5;
// gradients, which compound the rounding of forward and backward, to 5e-4 of the
// largest finite-difference value of each tensor (per tensor, so small tensors are not
// drowned by big ones). Finite differences use h = 1e-5 in float64.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "reference.h"
#include "sieve.h"
#include "util.h"

using namespace testutil;
using ref::Vec;

namespace {

constexpr double kForwardTol = 1e-5;
constexpr double kGradTol = 5e-4;

class FamilyTest : public ::testing::TestWithParam<int32_t> {};

std::string family_name(const ::testing::TestParamInfo<int32_t>& info) {
  return info.param == SIEVE_FAMILY_GPT2 ? "gpt2" : "llama";
}

sieve_loss_opts plain_loss() { return sieve_loss_opts{1.0f, 0.0f, 1.0f}; }

}  // namespace

TEST_P(FamilyTest, TensorTableFollowsTheArchitectureNames) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  const bool gpt2 = GetParam() == SIEVE_FAMILY_GPT2;
  std::vector<std::string> want = {"tok_emb.weight"};
  if (gpt2) want.push_back("pos_emb.weight");
  for (int l = 0; l < 2; l++) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    want.push_back(b + "norm1.weight");
    if (gpt2) want.push_back(b + "norm1.bias");
    want.push_back(b + "attn.qkv.weight");
    if (gpt2) want.push_back(b + "attn.qkv.bias");
    want.push_back(b + "attn.out.weight");
    if (gpt2) want.push_back(b + "attn.out.bias");
    want.push_back(b + "norm2.weight");
    if (gpt2) want.push_back(b + "norm2.bias");
    if (gpt2) {
      for (const char* s : {"mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias"}) want.push_back(b + s);
    } else {
      for (const char* s : {"mlp.gate.weight", "mlp.up.weight", "mlp.down.weight"}) want.push_back(b + s);
    }
  }
  want.push_back("norm_f.weight");
  if (gpt2) want.push_back("norm_f.bias");
  if (!gpt2) want.push_back("lm_head.weight");

  const auto tensors = h.tensors();
  ASSERT_EQ(tensors.size(), want.size());
  int64_t offset = 0;
  for (size_t i = 0; i < want.size(); i++) {
    const sieve_tensor_info& t = tensors[i];
    EXPECT_EQ(t.name, want[i]);
    EXPECT_EQ(t.offset, offset) << t.name;  // contiguous, in table order
    offset += t.size;
    EXPECT_EQ(t.decay, t.ndim == 2) << t.name;
    const std::string n = t.name;
    const bool linear = n.find(".attn.") != std::string::npos ? n.find(".weight") != std::string::npos
                                                               : n.find(".mlp.") != std::string::npos &&
                                                                     n.find(".weight") != std::string::npos;
    EXPECT_EQ(t.kind == SIEVE_KIND_LINEAR, linear) << n;
    EXPECT_EQ(t.scope, !linear ? SIEVE_SCOPE_NONE
                               : n.find(".attn.") != std::string::npos ? SIEVE_SCOPE_ATTN : SIEVE_SCOPE_FFN)
        << n;
  }
  EXPECT_EQ(offset, h.num_params());
  const sieve_tensor_info& qkv = tensors[h.index("blocks.1.attn.qkv.weight")];
  EXPECT_EQ(qkv.shape[0], 48);
  EXPECT_EQ(qkv.shape[1], 16);
  int64_t idx = 0;
  EXPECT_EQ(sieve_model_find_tensor(h.m, "blocks.9.attn.qkv.weight", &idx), SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("no tensor named 'blocks.9.attn.qkv.weight'"), std::string::npos);
}

TEST_P(FamilyTest, InitIsGpt2StyleAndSeeded) {
  sieve_config cfg = tiny_config(GetParam());
  cfg.dim = 64;
  cfg.heads = 4;
  cfg.mlp_hidden = 256;
  ModelHandle a(cfg), b(cfg), c(cfg);
  SIEVE_OK_OR_FAIL(sieve_model_init(a.m, 42));
  SIEVE_OK_OR_FAIL(sieve_model_init(b.m, 42));
  SIEVE_OK_OR_FAIL(sieve_model_init(c.m, 43));
  const int64_t P = a.num_params();
  const std::vector<float> p = a.read(SIEVE_BUFFER_PARAMS);
  EXPECT_TRUE(same_bits(p.data(), b.read(SIEVE_BUFFER_PARAMS).data(), P));
  EXPECT_FALSE(same_bits(p.data(), c.read(SIEVE_BUFFER_PARAMS).data(), P));
  for (const sieve_tensor_info& t : a.tensors()) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < t.size; i++) sum += p[t.offset + i], sq += (double)p[t.offset + i] * p[t.offset + i];
    const double mean = sum / t.size, sd = std::sqrt(sq / t.size - mean * mean);
    const std::string n = t.name;
    if (t.kind == SIEVE_KIND_NORM) {
      EXPECT_EQ(mean, 1.0) << n;
    } else if (t.kind == SIEVE_KIND_BIAS) {
      EXPECT_EQ(sq, 0.0) << n;
    } else {
      const bool resid = n.find("attn.out.") != std::string::npos || n.find("mlp.proj.") != std::string::npos ||
                         n.find("mlp.down.") != std::string::npos;
      const double want = resid ? 0.02 / std::sqrt(2.0 * cfg.layers) : 0.02;
      // sample standard deviation of >= 1024 normals: within 10% with overwhelming probability
      EXPECT_NEAR(sd, want, 0.1 * want) << n;
      EXPECT_NEAR(mean, 0.0, 0.2 * want) << n;
    }
  }
}

// Initialisation is generated by the core on the host and written to the backend: these
// bits, of the engine before the backend seam existed, must never change (checkpoints,
// runs and CPU-vs-GPU comparisons start from them).
TEST(Model, InitBitsAreThoseOfEveryEarlierVersion) {
  struct Pinned {
    int32_t family;
    const char* tensor;
    uint32_t bits[4];  // elements 0, 1, size - 2, size - 1
  };
  const Pinned pinned[] = {
      {SIEVE_FAMILY_GPT2, "tok_emb.weight", {0x3b8b7f97, 0xbd01ebd9, 0xbb2f2c00, 0x3a9fc289}},
      {SIEVE_FAMILY_GPT2, "blocks.1.attn.out.weight", {0x386f31f5, 0x3b620015, 0x3b63e95d, 0xba6aa3b5}},
      {SIEVE_FAMILY_GPT2, "blocks.0.mlp.proj.weight", {0x3b5495f1, 0x3b7c2619, 0xbb6cb480, 0xb91ea744}},
      {SIEVE_FAMILY_GPT2, "pos_emb.weight", {0x3c645e71, 0xbb1edf62, 0xbccd7b56, 0x3ba8d305}},
      {SIEVE_FAMILY_LLAMA, "lm_head.weight", {0xbaf50b86, 0xbc0d4d0d, 0x3bf0c46d, 0x3bb34bee}},
      {SIEVE_FAMILY_LLAMA, "blocks.1.mlp.down.weight", {0xbba88296, 0x3c1bc9c2, 0x3be4c472, 0xb9592a7b}},
      {SIEVE_FAMILY_LLAMA, "blocks.0.mlp.up.weight", {0xbcba7436, 0x3d085ee0, 0x3c77ed57, 0x3bbc1365}},
  };
  for (const Pinned& p : pinned) {
    ModelHandle h(tiny_config(p.family));
    SIEVE_OK_OR_FAIL(sieve_model_init(h.m, 42));
    const sieve_tensor_info t = h.tensors()[h.index(p.tensor)];
    std::vector<float> w(t.size);
    SIEVE_OK_OR_FAIL(sieve_model_read_tensor(h.m, p.tensor, SIEVE_BUFFER_PARAMS, w.data(), t.size));
    const int64_t at[4] = {0, 1, t.size - 2, t.size - 1};
    for (int k = 0; k < 4; k++) {
      uint32_t bits = 0;
      std::memcpy(&bits, &w[at[k]], sizeof bits);
      EXPECT_EQ(bits, p.bits[k]) << p.tensor << "[" << at[k] << "]";
    }
  }
}

TEST_P(FamilyTest, LogitsNllAndLossMatchFloat64Reference) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  randomize_params(h, 5);
  const int64_t B = 3, T = 8, V = cfg.vocab;
  const auto tokens = randint(B * T, (int32_t)V, 6);
  const ref::Model rm = h.reference(cfg);
  const Vec p = to_double(h.read(SIEVE_BUFFER_PARAMS));
  const Vec want = ref::logits(rm, p, tokens, B, T);

  std::vector<float> logits(B * T * V), nll(B * (T - 1));
  SIEVE_OK_OR_FAIL(sieve_model_logits(h.m, logits.data(), tokens.data(), B, T, nullptr, nullptr));
  EXPECT_TRUE(close(logits, want, kForwardTol, "logits"));

  SIEVE_OK_OR_FAIL(sieve_model_eval_nll(h.m, nll.data(), tokens.data(), B, T, nullptr, nullptr));
  Vec want_nll;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t + 1 < T; t++)
      want_nll.push_back(ref::loss(want.data() + (b * T + t) * V, tokens[b * T + t + 1], nullptr, 0, 1, V));
  EXPECT_TRUE(close(nll, want_nll, kForwardTol, "nll"));

  // training loss on shifted targets, one ignored position
  std::vector<int32_t> inputs(tokens), targets(B * T);
  for (int64_t i = 0; i < B * T; i++) targets[i] = tokens[(i + 1) % (B * T)];
  targets[4] = -1;
  sieve_loss out{};
  const sieve_loss_opts opts = plain_loss();
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), nullptr, &opts, B, T));
  const double want_loss = ref::model_loss(rm, p, inputs, targets, nullptr, 0, 1, B, T);
  EXPECT_NEAR(out.loss, want_loss, kForwardTol * want_loss);
  EXPECT_EQ(out.ce, out.loss);
  EXPECT_EQ(out.kl, 0.0);
  EXPECT_EQ(out.tokens, B * T - 1);
}

namespace {

// forward_backward of the engine vs finite differences of the reference loss, every
// parameter, compared tensor by tensor.
void check_model_gradients(int32_t family, bool with_teacher) {
  const sieve_config cfg = tiny_config(family);
  ModelHandle h(cfg);
  randomize_params(h, 11);
  const int64_t B = 2, T = 8, V = cfg.vocab;
  const auto inputs = randint(B * T, (int32_t)V, 12);
  auto targets = randint(B * T, (int32_t)V, 13);
  targets[3] = -1;
  std::vector<float> teacher;
  if (with_teacher) teacher = randn(B * T * V, 14, 2.0f);
  const float alpha = with_teacher ? 0.7f : 0.0f, tau = with_teacher ? 2.0f : 1.0f;
  const sieve_loss_opts opts{1.0f, alpha, tau};

  sieve_loss out{};
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(),
                                                with_teacher ? teacher.data() : nullptr, &opts, B, T));
  const std::vector<float> g = h.read(SIEVE_BUFFER_GRADS);
  const ref::Model rm = h.reference(cfg);
  Vec p = to_double(h.read(SIEVE_BUFFER_PARAMS));
  const Vec td = to_double(teacher);
  auto loss = [&](const Vec& x) {
    return ref::model_loss(rm, x, inputs, targets, with_teacher ? &td : nullptr, alpha, tau, B, T);
  };
  EXPECT_NEAR(out.loss, loss(p), kForwardTol * loss(p));
  for (const sieve_tensor_info& t : h.tensors()) {
    Vec fd(t.size), got(t.size);
    for (int64_t i = 0; i < t.size; i++) {
      fd[i] = central_diff(loss, p, t.offset + i, 1e-5);
      got[i] = g[t.offset + i];
    }
    EXPECT_TRUE(close(got, fd, kGradTol, t.name, 1e-9));
  }
}

}  // namespace

TEST_P(FamilyTest, EveryGradientMatchesFiniteDifferences) { check_model_gradients(GetParam(), false); }

TEST_P(FamilyTest, DistillationGradientsMatchFiniteDifferences) { check_model_gradients(GetParam(), true); }

TEST_P(FamilyTest, DistillingFromItselfGivesZeroKl) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  randomize_params(h, 21);
  const int64_t B = 2, T = 8, V = cfg.vocab;
  const auto inputs = randint(B * T, (int32_t)V, 22), targets = randint(B * T, (int32_t)V, 23);
  std::vector<float> own(B * T * V);
  SIEVE_OK_OR_FAIL(sieve_model_logits(h.m, own.data(), inputs.data(), B, T, nullptr, nullptr));
  const sieve_loss_opts opts{1.0f, 1.0f, 2.0f};
  sieve_loss out{};
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), own.data(), &opts, B, T));
  EXPECT_NEAR(out.kl, 0.0, 1e-6);
  EXPECT_NEAR(out.loss, 0.0, 1e-5);
  EXPECT_GT(out.ce, 0.5);  // the CE is still reported
}

TEST_P(FamilyTest, AlphaZeroTeacherIsPlainCrossEntropyBitForBit) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle a(cfg), b(cfg);
  randomize_params(a, 31);
  randomize_params(b, 31);
  const int64_t B = 2, T = 8, V = cfg.vocab, P = a.num_params();
  const auto inputs = randint(B * T, (int32_t)V, 32), targets = randint(B * T, (int32_t)V, 33);
  const auto teacher = randn(B * T * V, 34);
  const sieve_loss_opts ce = plain_loss(), kd{1.0f, 0.0f, 3.0f};
  sieve_loss la{}, lb{};
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(a.m, &la, inputs.data(), targets.data(), nullptr, &ce, B, T));
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(b.m, &lb, inputs.data(), targets.data(), teacher.data(), &kd, B, T));
  EXPECT_EQ(la.loss, lb.loss);
  EXPECT_TRUE(same_bits(a.read(SIEVE_BUFFER_GRADS).data(), b.read(SIEVE_BUFFER_GRADS).data(), P));
}

TEST_P(FamilyTest, GradientsAccumulateAcrossMicroBatches) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle whole(cfg), parts(cfg);
  randomize_params(whole, 41);
  randomize_params(parts, 41);
  const int64_t B = 2, T = 8, V = cfg.vocab, P = whole.num_params();
  const auto inputs = randint(B * T, (int32_t)V, 42), targets = randint(B * T, (int32_t)V, 43);
  sieve_loss out{};
  const sieve_loss_opts one = plain_loss(), half{0.5f, 0.0f, 1.0f};
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(whole.m, &out, inputs.data(), targets.data(), nullptr, &one, B, T));
  for (int64_t b = 0; b < B; b++)
    SIEVE_OK_OR_FAIL(sieve_model_forward_backward(parts.m, &out, inputs.data() + b * T, targets.data() + b * T, nullptr,
                                                  &half, 1, T));
  EXPECT_TRUE(close(parts.read(SIEVE_BUFFER_GRADS), whole.read(SIEVE_BUFFER_GRADS), 1e-5, "accumulated grads"));
  SIEVE_OK_OR_FAIL(sieve_model_zero_grad(parts.m));
  const std::vector<float> zeroed = parts.read(SIEVE_BUFFER_GRADS);
  for (int64_t i = 0; i < P; i++) ASSERT_EQ(zeroed[i], 0.0f);
}

// W~ = M (.) W in the forward, dW += dW~ (straight through) in the backward: a model with a
// mask transform must match, bit for bit, a dense model whose weights were zeroed where
// M = 0 (same forward values, same upstream gradients), and its pruned entries must still
// receive a gradient.
TEST_P(FamilyTest, MaskTransformIsMaskedForwardAndStraightThroughBackward) {
  const sieve_config cfg = tiny_config(GetParam());
  const bool gpt2 = GetParam() == SIEVE_FAMILY_GPT2;
  ModelHandle masked(cfg), dense(cfg);
  randomize_params(masked, 51);
  randomize_params(dense, 51);
  const int64_t B = 2, T = 8, V = cfg.vocab, P = masked.num_params();
  // llama: mask `up` alone, which forces the fused gate+up GEMM to materialise gate too
  const std::vector<std::string> names = {"blocks.0.attn.qkv.weight", gpt2 ? "blocks.1.mlp.fc.weight" : "blocks.1.mlp.up.weight"};
  std::vector<float> mask = masked.read(SIEVE_BUFFER_MASKS);
  for (int64_t i = 0; i < P; i++) EXPECT_EQ(mask[i], 1.0f) << "masks start at ones";
  std::vector<float> wd = dense.read(SIEVE_BUFFER_PARAMS);
  std::set<int64_t> pruned;
  for (const std::string& n : names) {
    const sieve_tensor_info t = masked.tensors()[masked.index(n)];
    for (int64_t i = 0; i < t.size; i++)
      if ((i * 7 + 3) % 4 < 2) {  // half of the entries
        mask[t.offset + i] = 0.0f;
        wd[t.offset + i] = 0.0f;
        pruned.insert(t.offset + i);
      }
  }
  masked.write(SIEVE_BUFFER_MASKS, mask);
  dense.write(SIEVE_BUFFER_PARAMS, wd);
  for (const std::string& n : names)
    SIEVE_OK_OR_FAIL(sieve_model_set_transform(masked.m, masked.index(n), SIEVE_TRANSFORM_MASK, nullptr, 0));
  const auto inputs = randint(B * T, (int32_t)V, 52), targets = randint(B * T, (int32_t)V, 53);
  std::vector<float> lm(B * T * V), ld(B * T * V);
  SIEVE_OK_OR_FAIL(sieve_model_logits(masked.m, lm.data(), inputs.data(), B, T, nullptr, nullptr));
  SIEVE_OK_OR_FAIL(sieve_model_logits(dense.m, ld.data(), inputs.data(), B, T, nullptr, nullptr));
  EXPECT_TRUE(same_bits(lm.data(), ld.data(), B * T * V));
  sieve_loss a{}, b{};
  const sieve_loss_opts opts = plain_loss();
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(masked.m, &a, inputs.data(), targets.data(), nullptr, &opts, B, T));
  SIEVE_OK_OR_FAIL(sieve_model_forward_backward(dense.m, &b, inputs.data(), targets.data(), nullptr, &opts, B, T));
  EXPECT_EQ(a.loss, b.loss);
  const std::vector<float> gm = masked.read(SIEVE_BUFFER_GRADS);
  EXPECT_TRUE(same_bits(gm.data(), dense.read(SIEVE_BUFFER_GRADS).data(), P));
  int64_t nonzero = 0;
  for (int64_t i : pruned) nonzero += gm[i] != 0.0f;
  EXPECT_GT(nonzero, (int64_t)pruned.size() / 2) << "pruned weights must get a straight-through gradient";
  // the dense weights themselves are untouched by the transform
  EXPECT_NE(masked.read(SIEVE_BUFFER_PARAMS)[*pruned.begin()], 0.0f);

  // back to none: the forward reads the dense weights again
  for (const std::string& n : names)
    SIEVE_OK_OR_FAIL(sieve_model_set_transform(masked.m, masked.index(n), SIEVE_TRANSFORM_NONE, nullptr, 0));
  SIEVE_OK_OR_FAIL(sieve_model_logits(masked.m, lm.data(), inputs.data(), B, T, nullptr, nullptr));
  EXPECT_FALSE(same_bits(lm.data(), ld.data(), B * T * V));
}

TEST_P(FamilyTest, TransformsOnlyOnLinearWeights) {
  ModelHandle h(tiny_config(GetParam()));
  EXPECT_EQ(sieve_model_set_transform(h.m, h.index("tok_emb.weight"), SIEVE_TRANSFORM_MASK, nullptr, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("'tok_emb.weight' is not a linear weight"), std::string::npos);
  EXPECT_EQ(sieve_model_set_transform(h.m, h.index("blocks.0.attn.out.weight"), 99, nullptr, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_NE(std::string(sieve_last_error()).find("unknown weight transform kind 99"), std::string::npos);
}

TEST_P(FamilyTest, LongerSequencesUseSeveralAttentionBlocks) {
  // T = 80 crosses the 64-row causal block; eval processes it in one chunk, training too.
  sieve_config cfg = tiny_config(GetParam());
  cfg.context = 80;
  cfg.layers = 1;
  ModelHandle h(cfg);
  randomize_params(h, 61);
  const int64_t B = 1, T = 80, V = cfg.vocab;
  const auto tokens = randint(B * T, (int32_t)V, 62);
  std::vector<float> logits(B * T * V);
  SIEVE_OK_OR_FAIL(sieve_model_logits(h.m, logits.data(), tokens.data(), B, T, nullptr, nullptr));
  const Vec p = to_double(h.read(SIEVE_BUFFER_PARAMS));
  EXPECT_TRUE(close(logits, ref::logits(h.reference(cfg), p, tokens, B, T), kForwardTol, "logits"));
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyTest, ::testing::Values(SIEVE_FAMILY_GPT2, SIEVE_FAMILY_LLAMA), family_name);

TEST(Model, RejectsBadBatches) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  ModelHandle h(cfg);
  const int64_t B = 1, T = 4;
  std::vector<int32_t> inputs = {1, 2, 3, 4}, targets = {2, 3, 4, 5};
  sieve_loss out{};
  const sieve_loss_opts opts = plain_loss();
  auto expect = [&](int status, const char* text) {
    EXPECT_NE(std::string(sieve_last_error()).find(text), std::string::npos) << sieve_last_error();
    EXPECT_EQ(status, SIEVE_E_INVALID_ARGUMENT);
  };
  inputs[2] = 23;
  expect(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), nullptr, &opts, B, T),
         "inputs[2] = 23 is not a token id of this model (vocab 23)");
  inputs[2] = 3;
  targets[0] = -2;
  expect(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), nullptr, &opts, B, T),
         "targets[0] = -2 is not a token id");
  targets = {-1, -1, -1, -1};
  expect(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), nullptr, &opts, B, T),
         "every target is -1");
  std::vector<int32_t> long_inputs(9, 1);
  expect(sieve_model_forward_backward(h.m, &out, long_inputs.data(), long_inputs.data(), nullptr, &opts, 1, 9),
         "T = 9 exceeds the model's context (8)");
  std::vector<float> nll(8);
  expect(sieve_model_eval_nll(h.m, nll.data(), inputs.data(), 4, 1, nullptr, nullptr), "T must be at least 2");
  const sieve_loss_opts bad_kd{1.0f, 1.5f, 1.0f};
  std::vector<float> teacher(4 * 23);
  targets = {2, 3, 4, 5};
  expect(sieve_model_forward_backward(h.m, &out, inputs.data(), targets.data(), teacher.data(), &bad_kd, B, T),
         "kd_alpha must be in [0, 1]");
}

TEST(Model, CancelStopsBetweenSteps) {
  const sieve_config cfg = tiny_config(SIEVE_FAMILY_LLAMA);
  ModelHandle h(cfg);
  SIEVE_OK_OR_FAIL(sieve_model_init(h.m, 1));
  std::vector<int32_t> tokens(4 * 8, 1);
  std::vector<float> nll(4 * 7);
  SIEVE_OK_OR_FAIL(sieve_model_cancel(h.m));
  EXPECT_EQ(sieve_model_eval_nll(h.m, nll.data(), tokens.data(), 4, 8, nullptr, nullptr), SIEVE_E_CANCELLED);
  EXPECT_STREQ(sieve_last_error(), "cancelled");
  sieve_loss out{};
  const sieve_loss_opts opts = plain_loss();
  EXPECT_EQ(sieve_model_forward_backward(h.m, &out, tokens.data(), tokens.data(), nullptr, &opts, 4, 8), SIEVE_E_CANCELLED);
  SIEVE_OK_OR_FAIL(sieve_model_clear_cancel(h.m));
  SIEVE_OK_OR_FAIL(sieve_model_eval_nll(h.m, nll.data(), tokens.data(), 4, 8, nullptr, nullptr));
}

TEST(Model, ProgressReportsEveryChunk) {
  sieve_config cfg = tiny_config(SIEVE_FAMILY_GPT2);
  cfg.context = 2048;  // 2048-token windows: two per 4096-token chunk
  ModelHandle h(cfg);
  SIEVE_OK_OR_FAIL(sieve_model_init(h.m, 1));
  const int64_t B = 5, T = 2048;
  std::vector<int32_t> tokens(B * T, 3);
  std::vector<float> nll(B * (T - 1));
  std::vector<std::pair<int64_t, int64_t>> seen;
  auto cb = [](void* user, int64_t done, int64_t total) {
    static_cast<std::vector<std::pair<int64_t, int64_t>>*>(user)->push_back({done, total});
  };
  SIEVE_OK_OR_FAIL(sieve_model_eval_nll(h.m, nll.data(), tokens.data(), B, T, cb, &seen));
  const std::vector<std::pair<int64_t, int64_t>> want = {{2, 5}, {4, 5}, {5, 5}};
  EXPECT_EQ(seen, want);
}
