// quant_test.cc — weight-only quantization (sieve.h, "weight-only quantization"): the RTN grid
// against a float64 reference, its round trip, masks (2:4 stays 2:4), GPTQ against RTN on the
// layer-output error it minimises, and the model-level calls: input Hessians against the
// float64 model's captured inputs, and the post-quantization integral against the model's own
// gradient and loss.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/quant.h"
#include "reference.h"
#include "sieve.h"
#include "util.h"

using namespace testutil;

namespace {

#define EXPECT_OK(call) EXPECT_EQ((call), SIEVE_OK) << sieve_last_error()

bool has_error(const char* text) { return std::string(sieve_last_error()).find(text) != std::string::npos; }

struct Quantized {
  std::vector<uint8_t> codes, zeros;
  std::vector<float> scales;
  Quantized(int64_t rows, int64_t cols, int64_t group) : codes(rows * cols), zeros(rows * cols / group), scales(rows * cols / group) {}
};

std::vector<float> dequant(const Quantized& q, int64_t rows, int64_t cols, int32_t bits, int64_t group) {
  std::vector<float> out(rows * cols);
  EXPECT_OK(sieve_dequantize(SIEVE_DEVICE_CPU, out.data(), q.codes.data(), q.scales.data(), q.zeros.data(), rows, cols, bits, group));
  return out;
}

// ||(W - Q) X^T||^2 over the calibration rows X (N, cols), in double.
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<float>& x, int64_t rows,
                    int64_t cols, int64_t N) {
  double e = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t n = 0; n < N; n++) {
      double d = 0;
      for (int64_t c = 0; c < cols; c++) d += ((double)w[r * cols + c] - q[r * cols + c]) * x[n * cols + c];
      e += d * d;
    }
  return e;
}

// Correlated calibration inputs (N, cols): a few shared factors plus noise, some columns louder.
std::vector<float> calibration_rows(int64_t N, int64_t cols, uint32_t seed) {
  const std::vector<float> f = randn(N * 4, seed), mix = randn(4 * cols, seed + 1), e = randn(N * cols, seed + 2, 0.3f);
  std::vector<float> x(N * cols);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < cols; c++) {
      double v = e[n * cols + c];
      for (int k = 0; k < 4; k++) v += f[n * 4 + k] * mix[k * cols + c];
      x[n * cols + c] = (float)(v * (1.0 + (c % 5)));
    }
  return x;
}

std::vector<double> gram(const std::vector<float>& x, int64_t N, int64_t cols) {
  std::vector<double> H(cols * cols, 0.0);
  for (int64_t n = 0; n < N; n++)
    for (int64_t a = 0; a < cols; a++)
      for (int64_t b = 0; b < cols; b++) H[a * cols + b] += (double)x[n * cols + a] * x[n * cols + b];
  return H;
}

// ---------------------------------------------------------------- RTN and dequantize

class RtnTest : public ::testing::TestWithParam<std::tuple<int32_t, bool>> {};

TEST_P(RtnTest, MatchesTheFloat64GridAndRoundTrips) {
  const auto [bits, symmetric] = GetParam();
  const int64_t rows = 6, cols = 32, group = 8, G = cols / group;
  std::vector<float> w = randn(rows * cols, 11 + bits);
  for (int64_t i = 0; i < 8; i++) w[cols + i] = std::fabs(w[cols + i]) + 0.1f;  // a group with no negatives
  for (int64_t i = 0; i < 8; i++) w[2 * cols + i] = 0.0f;                       // a group of zeros
  Quantized q(rows, cols, group);
  EXPECT_OK(sieve_quantize_rtn(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), nullptr, rows, cols, bits,
                               group, symmetric));
  const int maxq = (1 << bits) - 1;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < G; g++) {
      // the float64 grid: scale and zero from the group's range, 0 always on it
      double lo = 0, hi = 0, amax = 0;
      for (int64_t i = 0; i < group; i++) {
        const double v = w[r * cols + g * group + i];
        lo = std::min(lo, v), hi = std::max(hi, v), amax = std::max(amax, std::fabs(v));
      }
      double scale = symmetric ? amax / ((1 << (bits - 1)) - 1) : (hi - lo) / maxq;
      if (scale == 0) scale = 1;
      const double zero = symmetric ? (1 << (bits - 1)) : std::clamp(std::nearbyint(-lo / scale), 0.0, (double)maxq);
      EXPECT_NEAR(q.scales[r * G + g], scale, 1e-6 * scale);
      EXPECT_EQ(q.zeros[r * G + g], (uint8_t)zero);
      for (int64_t i = 0; i < group; i++) {
        const int64_t at = r * cols + g * group + i;
        ASSERT_LE(q.codes[at], maxq);
        const double want = std::clamp(std::nearbyint(w[at] / scale) + zero, 0.0, (double)maxq);
        // a value within float rounding of a half step may round either way
        if (std::fabs(std::fabs(w[at] / scale - std::trunc(w[at] / scale)) - 0.5) > 1e-4) {
          EXPECT_EQ(q.codes[at], (uint8_t)want) << "at " << at;
        }
      }
    }
  const std::vector<float> dq = dequant(q, rows, cols, bits, group);
  for (int64_t i = 0; i < rows * cols; i++) {
    const int64_t g = i / group;
    // exactly (code - zero) scale
    EXPECT_EQ(dq[i], ((float)q.codes[i] - (float)q.zeros[g]) * q.scales[g]);
    // asymmetric grids cover the range; symmetric ones may clamp only the most negative step
    if (!symmetric || w[i] > -q.scales[g] * ((1 << (bits - 1)) - 1)) {
      EXPECT_LE(std::fabs(dq[i] - w[i]), 0.5f * q.scales[g] * (1 + 1e-5f)) << "at " << i;
    }
    if (w[i] == 0.0f) {
      EXPECT_EQ(dq[i], 0.0f);
    }
    // the round trip: re-quantizing the dequantized weight on the same grid gives the same code
    EXPECT_EQ(sieve::quant_code(dq[i], q.scales[g], q.zeros[g], {bits, group, symmetric}), q.codes[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Grids, RtnTest,
                         ::testing::Combine(::testing::Values(2, 3, 4, 8), ::testing::Values(false, true)));

TEST(Rtn, PrunedWeightsStayZeroAndOutOfTheRange) {
  const int64_t rows = 8, cols = 16, group = 8;
  std::vector<float> w = randn(rows * cols, 5), mask(rows * cols);
  EXPECT_OK(sieve_mask24_magnitude(mask.data(), w.data(), rows, cols));
  // a huge pruned weight must not stretch its group's scale
  w[3] = mask[3] == 0.0f ? 1e4f : w[3];
  if (mask[3] != 0.0f) w[2] = mask[2] == 0.0f ? 1e4f : w[2];
  for (bool sym : {false, true}) {
    Quantized q(rows, cols, group);
    EXPECT_OK(sieve_quantize_rtn(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), mask.data(), rows, cols, 4,
                                 group, sym));
    EXPECT_LT(q.scales[0], 10.0f);
    const std::vector<float> dq = dequant(q, rows, cols, 4, group);
    int64_t violations = 0;
    EXPECT_OK(sieve_count24_violations(&violations, dq.data(), rows, cols));
    EXPECT_EQ(violations, 0);
    for (int64_t i = 0; i < rows * cols; i++) {
      if (mask[i] == 0.0f) {
        EXPECT_EQ(dq[i], 0.0f);
      }
    }
  }
}

TEST(Rtn, RejectsBadSettings) {
  std::vector<float> w(24, 0.5f);
  Quantized q(2, 12, 4);
  EXPECT_EQ(sieve_quantize_rtn(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), nullptr, 2, 12, 5, 4, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("bits must be 2, 3, 4 or 8"));
  EXPECT_EQ(sieve_quantize_rtn(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), nullptr, 2, 12, 4, 5, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("must divide cols"));
  w[7] = NAN;
  EXPECT_EQ(sieve_quantize_rtn(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), nullptr, 2, 12, 4, 4, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("w[7] is not finite"));
  q.codes[0] = 16;
  std::fill(q.scales.begin(), q.scales.end(), 1.0f);
  std::vector<float> out(24);
  EXPECT_EQ(sieve_dequantize(SIEVE_DEVICE_CPU, out.data(), q.codes.data(), q.scales.data(), q.zeros.data(), 2, 12, 4, 4),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("codes[0] = 16 is outside [0, 15]"));
  // the device is checked too (after the arguments): a number that is no device
  std::fill(w.begin(), w.end(), 0.5f);
  EXPECT_EQ(sieve_quantize_rtn(7, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), nullptr, 2, 12, 4, 4, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("unknown device 7"));
}

// ---------------------------------------------------------------- GPTQ

TEST(Gptq, WithAnIdentityHessianItIsRtn) {
  const int64_t rows = 5, cols = 24, group = 8;
  const std::vector<float> w = randn(rows * cols, 21);
  std::vector<double> H(cols * cols, 0.0);
  for (int64_t i = 0; i < cols; i++) H[i * cols + i] = 3.0;
  for (bool sym : {false, true}) {
    Quantized a(rows, cols, group), b(rows, cols, group);
    EXPECT_OK(sieve_quantize_rtn(SIEVE_DEVICE_CPU, a.codes.data(), a.scales.data(), a.zeros.data(), w.data(), nullptr, rows, cols, 3,
                                 group, sym));
    EXPECT_OK(sieve_gptq(SIEVE_DEVICE_CPU, b.codes.data(), b.scales.data(), b.zeros.data(), w.data(), H.data(), nullptr, rows, cols, 3,
                         group, sym, 0.01, 0));
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.zeros, b.zeros);
    EXPECT_EQ(a.scales, b.scales);
  }
}

class GptqTest : public ::testing::TestWithParam<std::tuple<int32_t, bool, bool>> {};

// GPTQ minimises the layer-output error on its calibration data, so it beats RTN there.
TEST_P(GptqTest, BeatsRtnOnTheCalibrationOutputError) {
  const auto [bits, act_order, masked] = GetParam();
  const int64_t rows = 16, cols = 32, group = 16, N = 256;
  const std::vector<float> w = randn(rows * cols, 31), x = calibration_rows(N, cols, 41);
  std::vector<double> H = gram(x, N, cols);
  std::vector<float> mask(rows * cols, 1.0f);
  if (masked) {
    EXPECT_OK(sieve_mask24_magnitude(mask.data(), w.data(), rows, cols));
  }
  std::vector<float> wm(rows * cols);
  for (int64_t i = 0; i < rows * cols; i++) wm[i] = w[i] * mask[i];
  Quantized a(rows, cols, group), b(rows, cols, group);
  EXPECT_OK(sieve_quantize_rtn(SIEVE_DEVICE_CPU, a.codes.data(), a.scales.data(), a.zeros.data(), w.data(), mask.data(), rows, cols,
                               bits, group, 0));
  EXPECT_OK(sieve_gptq(SIEVE_DEVICE_CPU, b.codes.data(), b.scales.data(), b.zeros.data(), w.data(), H.data(), mask.data(), rows, cols,
                       bits, group, 0, 0.01, act_order));
  const std::vector<float> qa = dequant(a, rows, cols, bits, group), qb = dequant(b, rows, cols, bits, group);
  const double e_rtn = output_error(wm, qa, x, rows, cols, N), e_gptq = output_error(wm, qb, x, rows, cols, N);
  EXPECT_LT(e_gptq, e_rtn) << "bits " << bits;
  for (int64_t i = 0; i < rows * cols; i++) {
    if (mask[i] == 0.0f) {
      EXPECT_EQ(qb[i], 0.0f);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, GptqTest,
                         ::testing::Combine(::testing::Values(2, 3, 4), ::testing::Values(false, true),
                                            ::testing::Values(false, true)));

TEST(Gptq, DeadInputsAndThreadsAndBadHessians) {
  const int64_t rows = 8, cols = 16, group = 8, N = 64;
  const std::vector<float> w = randn(rows * cols, 51);
  std::vector<float> x = calibration_rows(N, cols, 61);
  for (int64_t n = 0; n < N; n++) x[n * cols + 5] = 0.0f;  // input 5 never fires
  std::vector<double> H = gram(x, N, cols);
  auto run = [&](int32_t threads) {
    EXPECT_OK(sieve_set_default_threads(threads));
    Quantized q(rows, cols, group);
    EXPECT_OK(sieve_gptq(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), H.data(), nullptr, rows, cols, 4,
                         group, 0, 0.01, 1));
    return q;
  };
  const Quantized one = run(1), two = run(2);
  EXPECT_EQ(one.codes, two.codes);
  EXPECT_EQ(one.scales, two.scales);
  const std::vector<float> dq = dequant(one, rows, cols, 4, group);
  for (int64_t r = 0; r < rows; r++) EXPECT_EQ(dq[r * cols + 5], 0.0f);  // a dead input's weight is 0

  // two identical inputs: singular, and no damping to rescue it
  for (int64_t n = 0; n < N; n++) x[n * cols + 3] = x[n * cols + 2];
  H = gram(x, N, cols);
  Quantized q(rows, cols, group);
  EXPECT_EQ(sieve_gptq(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), H.data(), nullptr, rows, cols, 4,
                       group, 0, 0.0, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("not positive definite"));
  EXPECT_OK(sieve_gptq(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), H.data(), nullptr, rows, cols, 4,
                       group, 0, 0.01, 0));
  H[0] = -1.0;
  EXPECT_EQ(sieve_gptq(SIEVE_DEVICE_CPU, q.codes.data(), q.scales.data(), q.zeros.data(), w.data(), H.data(), nullptr, rows, cols, 4,
                       group, 0, 0.01, 0),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("diagonal must be >= 0"));
}

TEST(Gptq, TheBlockedFactorIsTheDotProductFormBitForBit) {
  // sizes below, at and across the panels of 64 columns and the strips of 8
  for (int64_t n : {1, 7, 63, 64, 65, 130, 203}) {
    std::vector<double> H = gram(calibration_rows(2 * n, n, 71), 2 * n, n);
    for (int64_t i = 0; i < n; i++) H[i * n + i] += 1e-3;
    const std::vector<double> U = sieve::inverse_cholesky_upper(H, n), ref = ref::gptq_factor(H, n);
    ASSERT_EQ(U.size(), ref.size());
    EXPECT_EQ(0, std::memcmp(U.data(), ref.data(), U.size() * sizeof(double))) << "n = " << n;
  }
  // a lost pivot is refused, naming it (the reversed order: pivot n - 1 - k)
  std::vector<double> H = {4.0, 2.0, 2.0, 1.0};
  try {
    sieve::inverse_cholesky_upper(H, 2);
    ADD_FAILURE() << "a singular matrix was factored";
  } catch (const sieve::Error& e) {
    EXPECT_EQ(e.status, SIEVE_E_INVALID_ARGUMENT);
    EXPECT_NE(e.message.find("pivot 0 is"), std::string::npos) << e.message;
  }
}

// ---------------------------------------------------------------- the model-level calls

class QuantModelTest : public ::testing::TestWithParam<int32_t> {};

std::string family_name(const ::testing::TestParamInfo<int32_t>& info) {
  return info.param == SIEVE_FAMILY_GPT2 ? "gpt2" : "llama";
}

std::vector<std::string> linear_names(const ModelHandle& h) {
  std::vector<std::string> out;
  for (const sieve_tensor_info& t : h.tensors())
    if (t.kind == SIEVE_KIND_LINEAR) out.push_back(t.name);
  return out;
}

TEST_P(QuantModelTest, InputHessiansAreTheGramMatricesOfTheLayerInputs) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  randomize_params(h, 7);
  const int64_t B = 3, T = 8;
  const std::vector<int32_t> tokens = randint(B * T, (int32_t)cfg.vocab, 9);
  const std::vector<std::string> names = linear_names(h);
  std::vector<int64_t> idx;
  int64_t total = 0;
  for (const std::string& n : names) {
    idx.push_back(h.index(n));
    const int64_t ic = h.tensors()[idx.back()].shape[1];
    total += ic * ic;
  }
  std::vector<double> H(total);
  EXPECT_OK(sieve_model_input_hessians(h.m, H.data(), idx.data(), (int64_t)idx.size(), tokens.data(), B, T, nullptr,
                                       nullptr));
  // the float64 model's inputs to each linear weight
  std::map<std::string, std::vector<double>> want;
  ref::Model r = h.reference(cfg);
  r.tap = [&](const std::string& weight, const double* in, int64_t N, int64_t IC) {
    std::vector<double>& g = want[weight];
    g.assign(IC * IC, 0.0);
    for (int64_t n = 0; n < N; n++)
      for (int64_t a = 0; a < IC; a++)
        for (int64_t b = 0; b < IC; b++) g[a * IC + b] += in[n * IC + a] * in[n * IC + b];
  };
  const std::vector<float> p = h.read(SIEVE_BUFFER_PARAMS);
  ref::logits(r, to_double(p), tokens, B, T);
  int64_t off = 0;
  for (size_t i = 0; i < names.size(); i++) {
    const int64_t ic = h.tensors()[idx[i]].shape[1];
    std::vector<double> got(H.begin() + off, H.begin() + off + ic * ic);
    ASSERT_TRUE(want.count(names[i])) << names[i];
    EXPECT_TRUE(close(got, want[names[i]], 1e-5, names[i].c_str()));
    for (int64_t a = 0; a < ic; a++) {
      for (int64_t b = 0; b < ic; b++) ASSERT_EQ(got[a * ic + b], got[b * ic + a]);
    }
    off += ic * ic;
  }
  // the same bits at another thread count; the parameters untouched
  EXPECT_OK(sieve_model_set_threads(h.m, 1));
  std::vector<double> H1(total);
  EXPECT_OK(sieve_model_input_hessians(h.m, H1.data(), idx.data(), (int64_t)idx.size(), tokens.data(), B, T, nullptr,
                                       nullptr));
  EXPECT_EQ(H, H1);
  EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), p.data(), (int64_t)p.size()));
  // not a linear weight
  const int64_t emb = h.index("tok_emb.weight");
  EXPECT_EQ(sieve_model_input_hessians(h.m, H.data(), &emb, 1, tokens.data(), B, T, nullptr, nullptr),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("not a block linear weight"));
}

TEST_P(QuantModelTest, PostQuantIntegralIntegratesTheModelsGradient) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  randomize_params(h, 17);
  const int64_t M = 4, T = 8, micro = 3;
  std::vector<int32_t> inputs = randint(M * T, (int32_t)cfg.vocab, 19), targets = randint(M * T, (int32_t)cfg.vocab, 23);
  targets[5] = -1;
  const std::vector<std::string> names = {"blocks.0.attn.out.weight", GetParam() == SIEVE_FAMILY_GPT2 ? "blocks.1.mlp.fc.weight" : "blocks.1.mlp.up.weight"};
  std::vector<int64_t> idx;
  int64_t D = 0;
  for (const std::string& n : names) idx.push_back(h.index(n)), D += h.tensors()[idx.back()].size;
  const std::vector<float> delta = randn(D, 29, 0.05f);
  const std::vector<float> p0 = h.read(SIEVE_BUFFER_PARAMS);

  // K = 1 at s = 0 with weight 1: pqi = delta (.) g(w), g the gradient of the mean loss
  std::vector<double> pqi(D), losses(3);
  const double s0 = 0.0, one = 1.0;
  EXPECT_OK(sieve_model_post_quant_integral(h.m, pqi.data(), losses.data(), idx.data(), 2, delta.data(), &s0, &one, 1,
                                            inputs.data(), targets.data(), M, T, micro, nullptr, nullptr));
  EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), p0.data(), (int64_t)p0.size()));
  ModelHandle g(cfg);
  g.write(SIEVE_BUFFER_PARAMS, p0);
  sieve_loss out{};
  EXPECT_OK(sieve_model_zero_grad(g.m));
  const sieve_loss_opts plain{1.0f, 0.0f, 1.0f};
  EXPECT_OK(sieve_model_forward_backward(g.m, &out, inputs.data(), targets.data(), nullptr, &plain, M, T));
  const std::vector<float> grads = g.read(SIEVE_BUFFER_GRADS);
  std::vector<double> want(D);
  int64_t off = 0;
  for (size_t i = 0; i < names.size(); i++) {
    const int64_t o = h.offset(names[i]), n = h.tensors()[idx[i]].size;
    for (int64_t j = 0; j < n; j++) want[off + j] = (double)delta[off + j] * grads[o + j];
    off += n;
  }
  EXPECT_TRUE(close(pqi, want, 1e-4, "pqi at s = 0"));
  EXPECT_NEAR(losses[0], out.ce, 1e-5 * out.ce);
  EXPECT_NEAR(losses[2], losses[0], 1e-12);
  // F(w + delta) against the float64 model
  std::vector<double> moved = to_double(p0);
  off = 0;
  for (size_t i = 0; i < names.size(); i++) {
    const int64_t o = h.offset(names[i]), n = h.tensors()[idx[i]].size;
    for (int64_t j = 0; j < n; j++) moved[o + j] = (double)(p0[o + j] + delta[off + j]);
    off += n;
  }
  const ref::Model r = h.reference(cfg);
  EXPECT_NEAR(losses[1], ref::model_loss(r, moved, inputs, targets, nullptr, 0, 1, M, T), 1e-5 * losses[1]);

  // the midpoint rule with 32 points integrates the gradient along the path: sum pqi = dL
  const int64_t K = 32;
  std::vector<double> pts(K), wts(K, 1.0 / K);
  for (int64_t k = 0; k < K; k++) pts[k] = (k + 0.5) / K;
  std::vector<double> pqi32(D), losses32(K + 2);
  EXPECT_OK(sieve_model_post_quant_integral(h.m, pqi32.data(), losses32.data(), idx.data(), 2, delta.data(), pts.data(),
                                            wts.data(), K, inputs.data(), targets.data(), M, T, micro, nullptr, nullptr));
  double total = 0;
  for (double v : pqi32) total += v;
  const double dl = losses32[1] - losses32[0];
  EXPECT_NEAR(total, dl, 1e-3 * std::fabs(dl) + 1e-6) << "dL " << dl;
  EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), p0.data(), (int64_t)p0.size()));
  // bad arguments
  const double bad = 1.5;
  EXPECT_EQ(sieve_model_post_quant_integral(h.m, pqi.data(), losses.data(), idx.data(), 2, delta.data(), &bad, &one, 1,
                                            inputs.data(), targets.data(), M, T, micro, nullptr, nullptr),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("outside [0, 1]"));
  const int64_t twice[2] = {idx[0], idx[0]};
  EXPECT_EQ(sieve_model_post_quant_integral(h.m, pqi.data(), losses.data(), twice, 2, delta.data(), &s0, &one, 1,
                                            inputs.data(), targets.data(), M, T, micro, nullptr, nullptr),
            SIEVE_E_INVALID_ARGUMENT);
  EXPECT_TRUE(has_error("listed twice"));
}

TEST_P(QuantModelTest, PostQuantIntegralRestoresTheWeightsWhenCancelled) {
  const sieve_config cfg = tiny_config(GetParam());
  ModelHandle h(cfg);
  randomize_params(h, 37);
  const int64_t M = 4, T = 8;
  const std::vector<int32_t> inputs = randint(M * T, (int32_t)cfg.vocab, 39), targets = randint(M * T, (int32_t)cfg.vocab, 41);
  const int64_t idx = h.index("blocks.0.attn.qkv.weight");
  const int64_t D = h.tensors()[idx].size;
  const std::vector<float> delta = randn(D, 43, 0.1f), p0 = h.read(SIEVE_BUFFER_PARAMS);
  std::vector<double> pqi(D), losses(3);
  const double s = 0.5, one = 1.0;
  struct Ctx {
    sieve_model* m;
    int calls = 0;
  } ctx{h.m};
  auto cancel_on_third = [](void* user, int64_t, int64_t) {
    Ctx* c = static_cast<Ctx*>(user);
    if (++c->calls == 3) sieve_model_cancel(c->m);
  };
  EXPECT_EQ(sieve_model_post_quant_integral(h.m, pqi.data(), losses.data(), &idx, 1, delta.data(), &s, &one, 1,
                                            inputs.data(), targets.data(), M, T, 1, cancel_on_third, &ctx),
            SIEVE_E_CANCELLED);
  EXPECT_OK(sieve_model_clear_cancel(h.m));
  EXPECT_TRUE(same_bits(h.read(SIEVE_BUFFER_PARAMS).data(), p0.data(), (int64_t)p0.size()));
}

INSTANTIATE_TEST_SUITE_P(Families, QuantModelTest, ::testing::Values(SIEVE_FAMILY_GPT2, SIEVE_FAMILY_LLAMA),
                         family_name);

}  // namespace
