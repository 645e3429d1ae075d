// ops_test.cc — every op's float32 forward against the float64 reference, and its
// hand-written backward against central finite differences of the float64 reference.
//
// Tolerances: the kernels run in float32 (unit roundoff 6e-8); the sums here have at most
// a few hundred terms, so the expected relative error is ~1e-6. Forward values are held
// to 1e-5 and gradients to 1e-4 of the reference's scale; a wrong formula is off by
// 1e-2 or more. The differences are taken in float64 with h = 1e-5, whose truncation
// (~h^2) and rounding (~1e-16 / h) errors are far below those tolerances.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "reference.h"
#include "sieve.h"
#include "util.h"

using namespace testutil;
using ref::Vec;

namespace {

constexpr double kForwardTol = 1e-5;
constexpr double kGradTol = 1e-4;
constexpr double kH = 1e-5;

// sum(out * w) of a reference op, the scalar whose gradient the backward computes when
// given dout = w.
double weighted(const Vec& out, const std::vector<float>& w) {
  double s = 0;
  for (size_t i = 0; i < out.size(); i++) s += out[i] * w[i];
  return s;
}

Vec fd_grad(const std::function<double(const Vec&)>& f, Vec x, const std::vector<int64_t>& idx) {
  Vec g(idx.size());
  for (size_t k = 0; k < idx.size(); k++) g[k] = central_diff(f, x, idx[k], kH);
  return g;
}

Vec fd_grad_all(const std::function<double(const Vec&)>& f, const Vec& x) {
  std::vector<int64_t> idx(x.size());
  for (size_t i = 0; i < idx.size(); i++) idx[i] = (int64_t)i;
  return fd_grad(f, x, idx);
}

Vec pick(const std::vector<float>& v, const std::vector<int64_t>& idx) {
  Vec out;
  for (int64_t i : idx) out.push_back(v[i]);
  return out;
}

Vec minus(const std::vector<float>& a, const std::vector<float>& b) {
  Vec out(a.size());
  for (size_t i = 0; i < a.size(); i++) out[i] = (double)a[i] - (double)b[i];
  return out;
}

}  // namespace

TEST(Matmul, ForwardAndBackwardMatchReferenceAndFiniteDifferences) {
  const int64_t N = 7, IC = 19, OC = 13;
  auto inp = randn(N * IC, 1), w = randn(OC * IC, 2, 0.5f), b = randn(OC, 3), dout = randn(N * OC, 4);
  std::vector<float> out(N * OC);
  SIEVE_OK_OR_FAIL(sieve_matmul_forward(out.data(), inp.data(), w.data(), b.data(), N, IC, OC));
  Vec want(N * OC);
  ref::matmul(want.data(), to_double(inp).data(), to_double(w).data(), to_double(b).data(), N, IC, OC);
  EXPECT_TRUE(close(out, want, kForwardTol, "out"));

  // dweight and dbias accumulate: start them from non-zero values
  auto dw0 = randn(OC * IC, 5), db0 = randn(OC, 6);
  std::vector<float> dinp(N * IC), dw = dw0, db = db0;
  SIEVE_OK_OR_FAIL(sieve_matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, IC, OC));
  auto loss = [&](const Vec& x, const Vec& W, const Vec& B) {
    Vec o(N * OC);
    ref::matmul(o.data(), x.data(), W.data(), B.data(), N, IC, OC);
    return weighted(o, dout);
  };
  const Vec x = to_double(inp), W = to_double(w), Bv = to_double(b);
  EXPECT_TRUE(close(dinp, fd_grad_all([&](const Vec& v) { return loss(v, W, Bv); }, x), kGradTol, "dinp"));
  EXPECT_TRUE(close(minus(dw, dw0), fd_grad_all([&](const Vec& v) { return loss(x, v, Bv); }, W), kGradTol, "dweight"));
  EXPECT_TRUE(close(minus(db, db0), fd_grad_all([&](const Vec& v) { return loss(x, W, v); }, Bv), kGradTol, "dbias"));
}

// Shapes large enough for the engine to split the GEMMs across threads.
TEST(Matmul, SplitGemmsMatchClosedFormReference) {
  const int64_t N = 300, IC = 64, OC = 96;
  auto inp = randn(N * IC, 11), w = randn(OC * IC, 12), dout = randn(N * OC, 13);
  std::vector<float> out(N * OC), dinp(N * IC), dw(OC * IC, 0.0f), db(OC, 0.0f);
  SIEVE_OK_OR_FAIL(sieve_matmul_forward(out.data(), inp.data(), w.data(), nullptr, N, IC, OC));
  SIEVE_OK_OR_FAIL(sieve_matmul_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), w.data(), N, IC, OC));
  Vec want(N * OC), wdinp(N * IC, 0.0), wdw(OC * IC, 0.0), wdb(OC, 0.0);
  ref::matmul(want.data(), to_double(inp).data(), to_double(w).data(), nullptr, N, IC, OC);
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      const double d = dout[n * OC + o];
      wdb[o] += d;
      for (int64_t i = 0; i < IC; i++) {
        wdinp[n * IC + i] += d * w[o * IC + i];
        wdw[o * IC + i] += d * inp[n * IC + i];
      }
    }
  EXPECT_TRUE(close(out, want, kForwardTol, "out"));
  EXPECT_TRUE(close(dinp, wdinp, kGradTol, "dinp"));
  EXPECT_TRUE(close(dw, wdw, kGradTol, "dweight"));
  EXPECT_TRUE(close(db, wdb, kGradTol, "dbias"));
}

TEST(LayerNorm, ForwardAndBackward) {
  const int64_t N = 5, C = 37;
  const float eps = 1e-5f;
  auto inp = randn(N * C, 21, 2.0f), w = randn(C, 22, 0.2f), b = randn(C, 23, 0.1f), dout = randn(N * C, 24);
  for (float& x : w) x += 1.0f;
  std::vector<float> out(N * C), mean(N), rstd(N);
  SIEVE_OK_OR_FAIL(sieve_layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), eps, N, C));
  auto fwd = [&](const Vec& x, const Vec& W, const Vec& B) {
    Vec o(N * C);
    ref::layernorm(o.data(), x.data(), W.data(), B.data(), eps, N, C);
    return o;
  };
  const Vec x = to_double(inp), W = to_double(w), Bv = to_double(b);
  EXPECT_TRUE(close(out, fwd(x, W, Bv), kForwardTol, "out"));

  auto dinp0 = randn(N * C, 25), dw0 = randn(C, 26), db0 = randn(C, 27);
  auto dinp = dinp0, dw = dw0, db = db0;
  SIEVE_OK_OR_FAIL(sieve_layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), mean.data(),
                                            rstd.data(), w.data(), N, C));
  EXPECT_TRUE(close(minus(dinp, dinp0), fd_grad_all([&](const Vec& v) { return weighted(fwd(v, W, Bv), dout); }, x),
                    kGradTol, "dinp"));
  EXPECT_TRUE(close(minus(dw, dw0), fd_grad_all([&](const Vec& v) { return weighted(fwd(x, v, Bv), dout); }, W),
                    kGradTol, "dweight"));
  EXPECT_TRUE(close(minus(db, db0), fd_grad_all([&](const Vec& v) { return weighted(fwd(x, W, v), dout); }, Bv),
                    kGradTol, "dbias"));
}

TEST(LayerNorm, ManyRowsSplitIntoChunks) {
  // more rows than one reduction chunk, so the chunked weight-gradient sum is exercised
  const int64_t N = 200, C = 24;
  auto inp = randn(N * C, 31), w = randn(C, 32), b = randn(C, 33), dout = randn(N * C, 34);
  std::vector<float> out(N * C), mean(N), rstd(N), dinp(N * C, 0.0f), dw(C, 0.0f), db(C, 0.0f);
  SIEVE_OK_OR_FAIL(sieve_layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), w.data(), b.data(), 1e-5f, N, C));
  SIEVE_OK_OR_FAIL(sieve_layernorm_backward(dinp.data(), dw.data(), db.data(), dout.data(), inp.data(), mean.data(),
                                            rstd.data(), w.data(), N, C));
  Vec wdw(C, 0.0), wdb(C, 0.0);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      const double xhat = ((double)inp[n * C + c] - mean[n]) * rstd[n];
      wdw[c] += dout[n * C + c] * xhat;
      wdb[c] += dout[n * C + c];
    }
  EXPECT_TRUE(close(dw, wdw, kGradTol, "dweight"));
  EXPECT_TRUE(close(db, wdb, kGradTol, "dbias"));
}

TEST(RMSNorm, ForwardAndBackward) {
  const int64_t N = 4, C = 33;
  const float eps = 1e-6f;
  auto inp = randn(N * C, 41, 1.5f), w = randn(C, 42, 0.2f), dout = randn(N * C, 43);
  for (float& x : w) x += 1.0f;
  std::vector<float> out(N * C), rstd(N);
  SIEVE_OK_OR_FAIL(sieve_rmsnorm_forward(out.data(), rstd.data(), inp.data(), w.data(), eps, N, C));
  auto fwd = [&](const Vec& x, const Vec& W) {
    Vec o(N * C);
    ref::rmsnorm(o.data(), x.data(), W.data(), eps, N, C);
    return o;
  };
  const Vec x = to_double(inp), W = to_double(w);
  EXPECT_TRUE(close(out, fwd(x, W), kForwardTol, "out"));
  auto dinp0 = randn(N * C, 44), dw0 = randn(C, 45);
  auto dinp = dinp0, dw = dw0;
  SIEVE_OK_OR_FAIL(sieve_rmsnorm_backward(dinp.data(), dw.data(), dout.data(), inp.data(), rstd.data(), w.data(), N, C));
  EXPECT_TRUE(close(minus(dinp, dinp0), fd_grad_all([&](const Vec& v) { return weighted(fwd(v, W), dout); }, x),
                    kGradTol, "dinp"));
  EXPECT_TRUE(close(minus(dw, dw0), fd_grad_all([&](const Vec& v) { return weighted(fwd(x, v), dout); }, W), kGradTol,
                    "dweight"));
}

TEST(Gelu, ForwardAndBackward) {
  const int64_t n = 101;
  std::vector<float> inp(n);
  for (int64_t i = 0; i < n; i++) inp[i] = -6.0f + 12.0f * (float)i / (float)(n - 1);  // includes 0
  auto dout = randn(n, 51);
  std::vector<float> out(n), dinp(n);
  SIEVE_OK_OR_FAIL(sieve_gelu_forward(out.data(), inp.data(), n));
  Vec want(n);
  for (int64_t i = 0; i < n; i++) want[i] = ref::gelu(inp[i]);
  EXPECT_TRUE(close(out, want, kForwardTol, "out"));
  SIEVE_OK_OR_FAIL(sieve_gelu_backward(dinp.data(), dout.data(), inp.data(), n));
  auto f = [&](const Vec& x) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += ref::gelu(x[i]) * dout[i];
    return s;
  };
  EXPECT_TRUE(close(dinp, fd_grad_all(f, to_double(inp)), kGradTol, "dinp"));
}

TEST(SwiGLU, ForwardAndBackward) {
  const int64_t N = 3, H = 21;
  auto inp = randn(N * 2 * H, 61, 2.0f), dout = randn(N * H, 62);
  std::vector<float> out(N * H), dinp(N * 2 * H);
  SIEVE_OK_OR_FAIL(sieve_swiglu_forward(out.data(), inp.data(), N, H));
  auto fwd = [&](const Vec& x) {
    Vec o(N * H);
    ref::swiglu(o.data(), x.data(), N, H);
    return o;
  };
  const Vec x = to_double(inp);
  EXPECT_TRUE(close(out, fwd(x), kForwardTol, "out"));
  SIEVE_OK_OR_FAIL(sieve_swiglu_backward(dinp.data(), dout.data(), inp.data(), N, H));
  EXPECT_TRUE(close(dinp, fd_grad_all([&](const Vec& v) { return weighted(fwd(v), dout); }, x), kGradTol, "dinp"));
}

TEST(RoPE, ForwardAndBackward) {
  const int64_t B = 2, T = 5, C = 8, NH = 2;
  const float theta = 10000.0f;
  auto qkv = randn(B * T * 3 * C, 71), dout = randn(B * T * 3 * C, 72);
  auto out = qkv;
  SIEVE_OK_OR_FAIL(sieve_rope_forward(out.data(), theta, B, T, C, NH));
  auto fwd = [&](Vec x) {
    ref::rope(x.data(), theta, B, T, C, NH);
    return x;
  };
  const Vec x = to_double(qkv);
  EXPECT_TRUE(close(out, fwd(x), kForwardTol, "out"));
  auto dqkv = dout;
  SIEVE_OK_OR_FAIL(sieve_rope_backward(dqkv.data(), theta, B, T, C, NH));
  EXPECT_TRUE(close(dqkv, fd_grad_all([&](const Vec& v) { return weighted(fwd(v), dout); }, x), kGradTol, "dqkv"));
}

// T = 70 > the 64-row block of the causal GEMMs, so both the diagonal and the
// off-diagonal blocks are checked.
class AttentionTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(AttentionTest, ForwardAndBackward) {
  const int64_t B = 2, T = GetParam(), C = 16, NH = 2;
  auto qkv = randn(B * T * 3 * C, 81), dout = randn(B * T * C, 82);
  std::vector<float> out(B * T * C), att(B * NH * T * T), dqkv(B * T * 3 * C);
  SIEVE_OK_OR_FAIL(sieve_attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH));
  auto fwd = [&](const Vec& x) {
    Vec o(B * T * C);
    ref::attention(o.data(), x.data(), B, T, C, NH);
    return o;
  };
  const Vec x = to_double(qkv);
  EXPECT_TRUE(close(out, fwd(x), kForwardTol, "out"));
  SIEVE_OK_OR_FAIL(sieve_attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH));
  const auto idx = sample_indices((int64_t)x.size(), 400, 83);
  EXPECT_TRUE(close(pick(dqkv, idx), fd_grad([&](const Vec& v) { return weighted(fwd(v), dout); }, x, idx), kGradTol,
                    "dqkv"));
}

INSTANTIATE_TEST_SUITE_P(Lengths, AttentionTest, ::testing::Values(1, 5, 70));

TEST(Embedding, ForwardAndBackward) {
  const int64_t B = 2, T = 5, C = 6, V = 7;
  std::vector<int32_t> tokens = {3, 1, 3, 0, 6, 1, 1, 5, 3, 2};  // repeats: the backward must add them
  auto wte = randn(V * C, 91), wpe = randn(T * C, 92), dout = randn(B * T * C, 93);
  std::vector<float> out(B * T * C);
  SIEVE_OK_OR_FAIL(sieve_embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C, V));
  Vec want(B * T * C);
  for (int64_t n = 0; n < B * T; n++)
    for (int64_t c = 0; c < C; c++) want[n * C + c] = (double)wte[tokens[n] * C + c] + wpe[(n % T) * C + c];
  EXPECT_TRUE(close(out, want, kForwardTol, "out"));
  auto dwte0 = randn(V * C, 94), dwpe0 = randn(T * C, 95);
  auto dwte = dwte0, dwpe = dwpe0;
  SIEVE_OK_OR_FAIL(sieve_embedding_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C, V));
  auto f = [&](const Vec& te, const Vec& pe) {
    double s = 0;
    for (int64_t n = 0; n < B * T; n++)
      for (int64_t c = 0; c < C; c++) s += (te[tokens[n] * C + c] + pe[(n % T) * C + c]) * dout[n * C + c];
    return s;
  };
  const Vec te = to_double(wte), pe = to_double(wpe);
  EXPECT_TRUE(close(minus(dwte, dwte0), fd_grad_all([&](const Vec& v) { return f(v, pe); }, te), kGradTol, "dwte"));
  EXPECT_TRUE(close(minus(dwpe, dwpe0), fd_grad_all([&](const Vec& v) { return f(te, v); }, pe), kGradTol, "dwpe"));
}

namespace {

void check_loss(const float* teacher_or_null, float alpha, float tau) {
  const int64_t N = 6, V = 37;
  auto logits = randn(N * V, 101, 3.0f), teacher = randn(N * V, 102, 3.0f), dl = randn(N, 103);
  std::vector<int32_t> targets = {4, -1, 36, 0, 17, 17};
  const float* t = teacher_or_null ? teacher.data() : nullptr;
  std::vector<float> losses(N), dlogits(N * V);
  SIEVE_OK_OR_FAIL(sieve_loss_forward(losses.data(), logits.data(), targets.data(), t, alpha, tau, N, V));
  const Vec td = to_double(teacher);
  auto row_loss = [&](const Vec& s, int64_t r) {
    return ref::loss(s.data() + r * V, targets[r], t ? td.data() + r * V : nullptr, alpha, tau, V);
  };
  Vec want(N);
  const Vec s = to_double(logits);
  for (int64_t r = 0; r < N; r++) want[r] = row_loss(s, r);
  EXPECT_TRUE(close(losses, want, kForwardTol, "losses"));
  SIEVE_OK_OR_FAIL(sieve_loss_backward(dlogits.data(), dl.data(), logits.data(), targets.data(), t, alpha, tau, N, V));
  auto f = [&](const Vec& x) {
    double sum = 0;
    for (int64_t r = 0; r < N; r++) sum += row_loss(x, r) * dl[r];
    return sum;
  };
  EXPECT_TRUE(close(dlogits, fd_grad_all(f, s), kGradTol, "dlogits"));
  for (int64_t j = 0; j < V; j++) EXPECT_EQ(dlogits[1 * V + j], 0.0f) << "ignored position has a gradient";
}

}  // namespace

TEST(Loss, CrossEntropy) { check_loss(nullptr, 0.0f, 1.0f); }

TEST(Loss, DistillationMixedWithCrossEntropy) {
  float unused = 0;
  check_loss(&unused, 0.6f, 2.0f);
}

TEST(Loss, DistillationAtUnitTemperature) {
  float unused = 0;
  check_loss(&unused, 1.0f, 1.0f);
}

TEST(Loss, KlOfADistributionWithItselfIsExactlyZero) {
  const int64_t N = 3, V = 50;
  auto logits = randn(N * V, 111, 4.0f);
  std::vector<int32_t> targets = {1, 2, 3};
  std::vector<float> losses(N), dlogits(N * V), ones(N, 1.0f);
  // alpha = 1: the loss is tau^2 KL(p || p) alone
  SIEVE_OK_OR_FAIL(sieve_loss_forward(losses.data(), logits.data(), targets.data(), logits.data(), 1.0f, 2.0f, N, V));
  for (float l : losses) EXPECT_EQ(l, 0.0f);
  SIEVE_OK_OR_FAIL(
      sieve_loss_backward(dlogits.data(), ones.data(), logits.data(), targets.data(), logits.data(), 1.0f, 2.0f, N, V));
  for (float d : dlogits) EXPECT_EQ(d, 0.0f);
}

TEST(Loss, AlphaZeroIsPlainCrossEntropyBitForBit) {
  const int64_t N = 4, V = 40;
  auto logits = randn(N * V, 121, 2.0f), teacher = randn(N * V, 122, 2.0f);
  std::vector<int32_t> targets = {0, 39, 7, 7};
  std::vector<float> l_ce(N), l_kd(N), d_ce(N * V), d_kd(N * V), ones(N, 1.0f);
  SIEVE_OK_OR_FAIL(sieve_loss_forward(l_ce.data(), logits.data(), targets.data(), nullptr, 0.0f, 1.0f, N, V));
  SIEVE_OK_OR_FAIL(sieve_loss_forward(l_kd.data(), logits.data(), targets.data(), teacher.data(), 0.0f, 2.0f, N, V));
  SIEVE_OK_OR_FAIL(sieve_loss_backward(d_ce.data(), ones.data(), logits.data(), targets.data(), nullptr, 0.0f, 1.0f, N, V));
  SIEVE_OK_OR_FAIL(
      sieve_loss_backward(d_kd.data(), ones.data(), logits.data(), targets.data(), teacher.data(), 0.0f, 2.0f, N, V));
  EXPECT_TRUE(same_bits(l_ce.data(), l_kd.data(), N));
  EXPECT_TRUE(same_bits(d_ce.data(), d_kd.data(), N * V));
}

TEST(Loss, ExtremeLogitsStayFinite) {
  const int64_t V = 5;
  std::vector<float> logits = {1000.0f, -1000.0f, 0.0f, 999.0f, -3.0e4f}, dlogits(V), loss(1), one(1, 1.0f);
  std::vector<int32_t> target = {1};
  SIEVE_OK_OR_FAIL(sieve_loss_forward(loss.data(), logits.data(), target.data(), nullptr, 0.0f, 1.0f, 1, V));
  SIEVE_OK_OR_FAIL(sieve_loss_backward(dlogits.data(), one.data(), logits.data(), target.data(), nullptr, 0.0f, 1.0f, 1, V));
  EXPECT_NEAR(loss[0], 2000.0 + std::log(1.0 + std::exp(-1.0)), 1e-2);
  for (float d : dlogits) EXPECT_TRUE(std::isfinite(d));
}
