// reference.h — float64 reference implementations of every op and of the whole model.
//
// Deliberately naive (plain loops, the textbook formulas, no blocking, no fixed lanes):
// they are the specification the float32 kernels are checked against, both for the
// forward values and, through central finite differences, for the gradients.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "sieve.h"

namespace ref {

using Vec = std::vector<double>;

inline void matmul(double* out, const double* inp, const double* w, const double* bias, int64_t N, int64_t IC,
                   int64_t OC) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t o = 0; o < OC; o++) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < IC; i++) s += inp[n * IC + i] * w[o * IC + i];
      out[n * OC + o] = s;
    }
}

inline void layernorm(double* out, const double* inp, const double* w, const double* b, double eps, int64_t N,
                      int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    const double* x = inp + n * C;
    double m = 0, v = 0;
    for (int64_t c = 0; c < C; c++) m += x[c];
    m /= C;
    for (int64_t c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    const double s = 1.0 / std::sqrt(v + eps);
    for (int64_t c = 0; c < C; c++) out[n * C + c] = (x[c] - m) * s * w[c] + b[c];
  }
}

inline void rmsnorm(double* out, const double* inp, const double* w, double eps, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; n++) {
    const double* x = inp + n * C;
    double ms = 0;
    for (int64_t c = 0; c < C; c++) ms += x[c] * x[c];
    const double s = 1.0 / std::sqrt(ms / C + eps);
    for (int64_t c = 0; c < C; c++) out[n * C + c] = x[c] * s * w[c];
  }
}

inline double gelu(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

inline double silu(double x) { return x / (1.0 + std::exp(-x)); }

// rows [gate (H) | up (H)] -> silu(gate) * up
inline void swiglu(double* out, const double* inp, int64_t N, int64_t H) {
  for (int64_t n = 0; n < N; n++)
    for (int64_t j = 0; j < H; j++) out[n * H + j] = silu(inp[n * 2 * H + j]) * inp[n * 2 * H + H + j];
}

// rotate-half RoPE on q and k of qkv (B, T, 3C), in place
inline void rope(double* qkv, double theta, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t HS = C / NH, half = HS / 2;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      for (int64_t part = 0; part < 2; part++)
        for (int64_t h = 0; h < NH; h++) {
          double* x = qkv + (b * T + t) * 3 * C + part * C + h * HS;
          for (int64_t i = 0; i < half; i++) {
            const double a = t * std::pow(theta, -2.0 * i / HS);
            const double x1 = x[i], x2 = x[i + half];
            x[i] = x1 * std::cos(a) - x2 * std::sin(a);
            x[i + half] = x2 * std::cos(a) + x1 * std::sin(a);
          }
        }
}

inline void attention(double* out, const double* qkv, int64_t B, int64_t T, int64_t C, int64_t NH) {
  const int64_t HS = C / NH;
  std::vector<double> p(T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < NH; h++)
      for (int64_t i = 0; i < T; i++) {
        const double* q = qkv + (b * T + i) * 3 * C + h * HS;
        double mx = -1e300;
        for (int64_t j = 0; j <= i; j++) {
          const double* k = qkv + (b * T + j) * 3 * C + C + h * HS;
          double s = 0;
          for (int64_t d = 0; d < HS; d++) s += q[d] * k[d];
          p[j] = s / std::sqrt((double)HS);
          mx = std::max(mx, p[j]);
        }
        double z = 0;
        for (int64_t j = 0; j <= i; j++) z += (p[j] = std::exp(p[j] - mx));
        for (int64_t d = 0; d < HS; d++) {
          double y = 0;
          for (int64_t j = 0; j <= i; j++) y += p[j] / z * qkv[(b * T + j) * 3 * C + 2 * C + h * HS + d];
          out[(b * T + i) * C + h * HS + d] = y;
        }
      }
}

// (1 - alpha) CE + alpha tau^2 KL(softmax(t/tau) || softmax(s/tau)); teacher null: CE.
inline double loss(const double* s, int32_t target, const double* t, double alpha, double tau, int64_t V) {
  if (target < 0) return 0.0;
  auto lse = [&](const double* x, double mul) {
    double mx = -1e300, z = 0;
    for (int64_t j = 0; j < V; j++) mx = std::max(mx, x[j] * mul);
    for (int64_t j = 0; j < V; j++) z += std::exp(x[j] * mul - mx);
    return mx + std::log(z);
  };
  const double ce = lse(s, 1.0) - s[target];
  if (!t) return ce;
  const double lp = lse(t, 1.0 / tau), lq = lse(s, 1.0 / tau);
  double kl = 0;
  for (int64_t j = 0; j < V; j++) {
    const double logp = t[j] / tau - lp, logq = s[j] / tau - lq;
    kl += std::exp(logp) * (logp - logq);
  }
  return (1.0 - alpha) * ce + alpha * tau * tau * kl;
}

// ---------------------------------------------------------------- the whole model

struct Model {
  sieve_config cfg;
  std::function<int64_t(const std::string&)> offset;  // tensor name -> offset in the flat layout
  // Adapters: whether the table has a tensor of that name (unset: no adapters), and the
  // linear weights whose forward multiplies by A (.) W (the SCALE transform, A = X.scale).
  std::function<bool(const std::string&)> has = nullptr;
  std::set<std::string> scaled = {};
  // Called with every linear layer's input rows (N, IC) as its forward reads them.
  std::function<void(const std::string& weight, const double* in, int64_t N, int64_t IC)> tap = nullptr;
};

// logits (B, T, V) of the model whose parameters p use the engine's flat layout
inline Vec logits(const Model& m, const Vec& p, const std::vector<int32_t>& tokens, int64_t B, int64_t T) {
  const sieve_config& c = m.cfg;
  const bool gpt2 = c.family == SIEVE_FAMILY_GPT2;
  const int64_t C = c.dim, NH = c.heads, H = c.mlp_hidden, V = c.vocab, N = B * T;
  const double eps = c.norm_eps;
  auto P = [&](const std::string& name) { return p.data() + m.offset(name); };
  Vec x(N * C), h(N * C), qkv(N * 3 * C), y(N * C), tmp(N * C), fc(N * 2 * H), act(N * H);
  for (int64_t n = 0; n < N; n++)
    for (int64_t cc = 0; cc < C; cc++)
      x[n * C + cc] = P("tok_emb.weight")[tokens[n] * C + cc] + (gpt2 ? P("pos_emb.weight")[(n % T) * C + cc] : 0.0);
  // out = in W~^T (+ bias) (+ (in P^T) S^T with SLoRB) for the linear layer x (x.weight, ...)
  auto linear = [&](double* out, const double* in, const std::string& x, bool bias, int64_t IC, int64_t OC) {
    if (m.tap) m.tap(x + ".weight", in, N, IC);
    Vec w(P(x + ".weight"), P(x + ".weight") + OC * IC);
    if (m.scaled.count(x + ".weight")) {
      const int64_t SG = c.scale_segments, seg = IC / SG;
      const double* A = P(x + ".scale");
      for (int64_t d = 0; d < OC; d++)
        for (int64_t j = 0; j < IC; j++) w[d * IC + j] *= A[d * SG + j / seg];
    }
    matmul(out, in, w.data(), bias ? P(x + ".bias") : nullptr, N, IC, OC);
    if (m.has && m.has(x + ".slorb_s")) {
      const int64_t r = IC / c.slorb_k;
      Vec xp(N * r);
      matmul(xp.data(), in, P(x + ".slorb_p"), nullptr, N, IC, r);
      const double* S = P(x + ".slorb_s");
      for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OC; o++)
          for (int64_t i = 0; i < r; i++) out[n * OC + o] += xp[n * r + i] * S[o * r + i];
    }
  };
  auto norm = [&](double* out, const double* in, const std::string& name) {
    if (gpt2)
      layernorm(out, in, P(name + ".weight"), P(name + ".bias"), eps, N, C);
    else
      rmsnorm(out, in, P(name + ".weight"), eps, N, C);
  };
  for (int64_t l = 0; l < c.layers; l++) {
    const std::string b = "blocks." + std::to_string(l) + ".";
    norm(h.data(), x.data(), b + "norm1");
    linear(qkv.data(), h.data(), b + "attn.qkv", gpt2, C, 3 * C);
    if (!gpt2) rope(qkv.data(), c.rope_theta, B, T, C, NH);
    attention(y.data(), qkv.data(), B, T, C, NH);
    linear(tmp.data(), y.data(), b + "attn.out", gpt2, C, C);
    for (int64_t i = 0; i < N * C; i++) x[i] += tmp[i];
    norm(h.data(), x.data(), b + "norm2");
    if (gpt2) {
      linear(fc.data(), h.data(), b + "mlp.fc", true, C, H);
      for (int64_t i = 0; i < N * H; i++) act[i] = gelu(fc[i]);
      linear(tmp.data(), act.data(), b + "mlp.proj", true, H, C);
    } else {
      Vec g(N * H), u(N * H);
      linear(g.data(), h.data(), b + "mlp.gate", false, C, H);
      linear(u.data(), h.data(), b + "mlp.up", false, C, H);
      for (int64_t i = 0; i < N * H; i++) act[i] = silu(g[i]) * u[i];
      linear(tmp.data(), act.data(), b + "mlp.down", false, H, C);
    }
    for (int64_t i = 0; i < N * C; i++) x[i] += tmp[i];
  }
  norm(h.data(), x.data(), "norm_f");
  Vec out(N * V);
  matmul(out.data(), h.data(), P(gpt2 ? "tok_emb.weight" : "lm_head.weight"), nullptr, N, C, V);
  return out;
}

// mean over predicted positions of the (mixed) loss
inline double model_loss(const Model& m, const Vec& p, const std::vector<int32_t>& inputs,
                         const std::vector<int32_t>& targets, const Vec* teacher, double alpha, double tau, int64_t B,
                         int64_t T) {
  const int64_t V = m.cfg.vocab;
  const Vec lg = logits(m, p, inputs, B, T);
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < B * T; i++) {
    if (targets[i] < 0) continue;
    sum += loss(lg.data() + i * V, targets[i], teacher ? teacher->data() + i * V : nullptr, alpha, tau, V);
    n++;
  }
  return sum / n;
}

// GPTQ's factor as its definition reads (kernels/cpu/quant.cc): the Cholesky factor of the
// reversed matrix by dot products, each entry's terms subtracted in ascending order, then R = J L J
// inverted by back substitution: U (n, n) upper with H^-1 = U^T U. The blocked factor must give
// these bits (no FMA contraction: kernels/CMakeLists.txt). Parallel as sieve's factor was before
// it was blocked, so bench/cpu/gptq_factor.cc sets the two side by side at equal threads.
inline Vec gptq_factor(const Vec& H, int64_t n) {
  Vec A(n * n), U(n * n, 0.0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) A[i * n + j] = H[(n - 1 - i) * n + (n - 1 - j)];
  for (int64_t j = 0; j < n; j++) {
    double d = A[j * n + j];
    for (int64_t k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
    const double ljj = std::sqrt(d);
    A[j * n + j] = ljj;
#pragma omp parallel for schedule(static)
    for (int64_t i = j + 1; i < n; i++) {
      double s = A[i * n + j];
      for (int64_t k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / ljj;
    }
  }
  auto R = [&](int64_t i, int64_t j) { return A[(n - 1 - i) * n + (n - 1 - j)]; };
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; j++) {
    U[j * n + j] = 1.0 / R(j, j);
    for (int64_t i = j - 1; i >= 0; i--) {
      double s = 0.0;
      for (int64_t k = i + 1; k <= j; k++) s += R(i, k) * U[k * n + j];
      U[i * n + j] = -s / R(i, i);
    }
  }
  return U;
}

}  // namespace ref
