// layers_checks.cu — cuda/layers.cuh against cpu/ops.h: the norms, the activations, the
// residual add, the bias gradient, the embeddings, RoPE, the loss and the bf16 copy, on fresh
// random inputs with sizes that are not multiples of any block (rows 37, 1000; C 48, 50, 768).
// "+=" outputs start from random values, so an overwrite shows.
//
// Tolerances:
//   - bit for bit: GELU, SwiGLU, the residual add, RoPE, the embeddings and their gradients,
//     the bias gradient (the device evaluates the CPU's expression operation by operation, and
//     sums in the CPU's order), and every bf16 copy (the fp32 result rounded to nearest even).
//   - kTolF32 (1e-5): the norms (outputs, statistics, gradients) and the loss (CE, KL, the
//     logits' gradient). The norms follow the CPU's order too (its 16 lanes, its chunks of 64
//     rows), so their error is expected to read 0; the loss reduces each row in a tree of its
//     own, which moves its sums by rounding only.
//   - Every op that sums runs twice on the same inputs and must give the same bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/ops.h"
#include "cuda/common.cuh"
#include "cuda/device_buffer.cuh"
#include "cuda/layers.cuh"

namespace {

using bf16 = __nv_bfloat16;
using sieve::cuda::DeviceBuffer;
using sieve::cuda::to_device;
using sieve::gpu_check::Check;
using sieve::gpu_check::kTolF32;
using sieve::gpu_check::normal;
namespace cpu = sieve::cpu;
namespace gpu = sieve::cuda;

std::vector<float> to_float(const std::vector<bf16>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = __bfloat162float(x[i]);
  return y;
}
// x rounded to bf16 on the host (round to nearest even), as floats
std::vector<float> rounded(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i++) y[i] = __bfloat162float(__float2bfloat16(x[i]));
  return y;
}

// Expects two runs' outputs to be the same bits.
void same_bits(Check& c, const std::string& what, const std::vector<float>& a, const std::vector<float>& b) {
  c.expect(a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0,
           what + ": a second run gave other bits");
}

std::string shape(const char* op, int64_t N, int64_t C) {
  return std::string(op) + " " + std::to_string(N) + "x" + std::to_string(C);
}

// Rows with a mean and a scale of their own, as a residual stream has.
std::vector<float> rows_input(int64_t N, int64_t C) {
  auto x = normal(N * C);
  const auto shift = normal(N, 2.0f), scale = normal(N, 1.0f);
  for (int64_t r = 0; r < N; r++)
    for (int64_t j = 0; j < C; j++) x[r * C + j] = shift[r] + (1.0f + std::fabs(scale[r])) * x[r * C + j];
  return x;
}

// ---------------------------------------------------------------- norms

const std::pair<int64_t, int64_t> kNormShapes[] = {{37, 48}, {5, 50}, {1000, 768}};

void layernorm_case(Check& c, int64_t N, int64_t C) {
  const float eps = 1e-5f;
  const auto x = rows_input(N, C), w = normal(C), b = normal(C), dy = normal(N * C);
  const auto dx0 = normal(N * C), dw0 = normal(C), db0 = normal(C);
  std::vector<float> out(N * C), mean(N), rstd(N), dx = dx0, dw = dw0, db = db0;
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), eps, N, C);
  cpu::layernorm_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), w.data(), N,
                          C);

  auto dX = to_device(x), dW = to_device(w), dB = to_device(b), dDy = to_device(dy);
  DeviceBuffer<float> gOut(N * C), gMean(N), gRstd(N), gDx(N * C), gDw(C), gDb(C);
  DeviceBuffer<bf16> gOutBf(N * C);
  DeviceBuffer<float> scratch((int64_t)gpu::norm_backward_scratch_floats(N, C));
  gpu::layernorm_forward(gOut.get(), gOutBf.get(), gMean.get(), gRstd.get(), dX.get(), dW.get(), dB.get(), eps, N, C,
                         0);
  const std::string s = shape("layernorm", N, C);
  const auto got = gOut.download();
  c.close(s + " out", got, out, kTolF32);
  c.close(s + " mean", gMean.download(), mean, kTolF32);
  c.close(s + " rstd", gRstd.download(), rstd, kTolF32);
  c.equal(s + " out bf16", to_float(gOutBf.download()), rounded(got));
  const auto mean1 = gMean.download(), rstd1 = gRstd.download();
  gpu::layernorm_forward(gOut.get(), nullptr, gMean.get(), gRstd.get(), dX.get(), dW.get(), dB.get(), eps, N, C, 0);
  same_bits(c, s + " out", gOut.download(), got);
  same_bits(c, s + " mean", gMean.download(), mean1);
  same_bits(c, s + " rstd", gRstd.download(), rstd1);

  // the backward from the CPU's statistics, twice from the same "+=" state
  auto dMean = to_device(mean), dRstd = to_device(rstd);
  std::vector<float> runs[2][3];
  for (auto& run : runs) {
    gDx.upload(dx0);
    gDw.upload(dw0);
    gDb.upload(db0);
    gpu::layernorm_backward(gDx.get(), gDw.get(), gDb.get(), dDy.get(), dX.get(), dMean.get(), dRstd.get(), dW.get(),
                            scratch.get(), N, C, 0);
    run[0] = gDx.download(), run[1] = gDw.download(), run[2] = gDb.download();
  }
  c.close(s + " dinp", runs[0][0], dx, kTolF32);
  c.close(s + " dweight", runs[0][1], dw, kTolF32);
  c.close(s + " dbias", runs[0][2], db, kTolF32);
  for (int k = 0; k < 3; k++) same_bits(c, s + " backward", runs[0][k], runs[1][k]);
}

void rmsnorm_case(Check& c, int64_t N, int64_t C) {
  const float eps = 1e-6f;
  const auto x = rows_input(N, C), w = normal(C), dy = normal(N * C);
  const auto dx0 = normal(N * C), dw0 = normal(C);
  std::vector<float> out(N * C), rstd(N), dx = dx0, dw = dw0;
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), eps, N, C);
  cpu::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), rstd.data(), w.data(), N, C);

  auto dX = to_device(x), dW = to_device(w), dDy = to_device(dy);
  DeviceBuffer<float> gOut(N * C), gRstd(N), gDx(N * C), gDw(C);
  DeviceBuffer<bf16> gOutBf(N * C);
  DeviceBuffer<float> scratch((int64_t)gpu::norm_backward_scratch_floats(N, C));
  gpu::rmsnorm_forward(gOut.get(), gOutBf.get(), gRstd.get(), dX.get(), dW.get(), eps, N, C, 0);
  const std::string s = shape("rmsnorm", N, C);
  const auto got = gOut.download();
  c.close(s + " out", got, out, kTolF32);
  c.close(s + " rstd", gRstd.download(), rstd, kTolF32);
  c.equal(s + " out bf16", to_float(gOutBf.download()), rounded(got));
  const auto rstd1 = gRstd.download();
  gpu::rmsnorm_forward(gOut.get(), nullptr, gRstd.get(), dX.get(), dW.get(), eps, N, C, 0);
  same_bits(c, s + " out", gOut.download(), got);
  same_bits(c, s + " rstd", gRstd.download(), rstd1);

  auto dRstd = to_device(rstd);
  std::vector<float> runs[2][2];
  for (auto& run : runs) {
    gDx.upload(dx0);
    gDw.upload(dw0);
    gpu::rmsnorm_backward(gDx.get(), gDw.get(), dDy.get(), dX.get(), dRstd.get(), dW.get(), scratch.get(), N, C, 0);
    run[0] = gDx.download(), run[1] = gDw.download();
  }
  c.close(s + " dinp", runs[0][0], dx, kTolF32);
  c.close(s + " dweight", runs[0][1], dw, kTolF32);
  for (int k = 0; k < 2; k++) same_bits(c, s + " backward", runs[0][k], runs[1][k]);
}

// ---------------------------------------------------------------- activations

// Pre-activations reaching both clamps of exp_f32 (|x| > ~10 saturates GELU's tanh).
std::vector<float> activation_input(int64_t n) {
  auto x = normal(n, 2.0f);
  for (int64_t i = 0; i < n; i += 97) x[i] *= 8.0f;
  return x;
}

// (GELU's backward: gelu_backward_bias_matches_cpu_bitwise)
void gelu_case(Check& c, int64_t n) {
  const auto x = activation_input(n);
  std::vector<float> out(n);
  cpu::gelu_forward(out.data(), x.data(), n);

  auto dX = to_device(x);
  DeviceBuffer<float> gOut(n);
  DeviceBuffer<bf16> gOutBf(n);
  const std::string s = "gelu n=" + std::to_string(n);
  gpu::gelu_forward(gOut.get(), gOutBf.get(), dX.get(), n, 0);
  c.equal(s + " out", gOut.download(), out);
  c.equal(s + " out bf16", to_float(gOutBf.download()), rounded(out));
  gpu::gelu_forward(nullptr, gOutBf.get(), dX.get(), n, 0);  // the bf16 copy alone
  c.equal(s + " bf16 only", to_float(gOutBf.download()), rounded(out));
}

void swiglu_case(Check& c, int64_t N, int64_t H) {
  const auto x = activation_input(N * 2 * H), dy = normal(N * H);
  std::vector<float> out(N * H), dx(N * 2 * H);
  cpu::swiglu_forward(out.data(), x.data(), N, H);
  cpu::swiglu_backward(dx.data(), dy.data(), x.data(), N, H);

  auto dX = to_device(x), dDy = to_device(dy);
  DeviceBuffer<float> gOut(N * H), gDx(N * 2 * H);
  DeviceBuffer<bf16> gOutBf(N * H);
  const std::string s = shape("swiglu", N, H);
  gpu::swiglu_forward(gOut.get(), gOutBf.get(), dX.get(), N, H, 0);
  c.equal(s + " out", gOut.download(), out);
  c.equal(s + " out bf16", to_float(gOutBf.download()), rounded(out));
  DeviceBuffer<bf16> gDxBf(N * 2 * H);
  gpu::swiglu_backward(gDx.get(), gDxBf.get(), dDy.get(), dX.get(), N, H, 0);
  c.equal(s + " dinp", gDx.download(), dx);
  c.equal(s + " dinp bf16", to_float(gDxBf.download()), rounded(dx));
  gpu::swiglu_backward(nullptr, gDxBf.get(), dDy.get(), dX.get(), N, H, 0);  // the bf16 copy alone
  c.equal(s + " dinp bf16 only", to_float(gDxBf.download()), rounded(dx));
}

}  // namespace

// A norm's backward fused by chunk (C % 4 == 0, 16-byte aligned pointers) against the row and
// column kernels the same call runs where a pointer is misaligned: the same bits in dinp and the
// parameter gradients. backward(dinp, dout, inp, dweight, dbias) runs the norm's backward of x (N, C).
template <class Backward>
void norm_fused_case(Check& c, const char* name, const std::vector<float>& x, int64_t N, int64_t C,
                     Backward backward) {
  const auto dy = normal(N * C), dx0 = normal(N * C), dw0 = normal(C), db0 = normal(C);
  auto gDw = to_device(dw0), gDb = to_device(db0);
  std::vector<float> got[2][3];
  for (int shift = 0; shift < 2; shift++) {  // 0: the fused kernel; 1: one float in, the two kernels
    DeviceBuffer<float> gX(N * C + 1), gDy(N * C + 1), gDx(N * C + 1);
    const auto put = [&](DeviceBuffer<float>& d, const std::vector<float>& h) {
      SIEVE_CUDA(cudaMemcpy(d.get() + shift, h.data(), sizeof(float) * h.size(), cudaMemcpyHostToDevice));
    };
    put(gX, x), put(gDy, dy), put(gDx, dx0);
    gDw.upload(dw0);
    gDb.upload(db0);
    backward(gDx.get() + shift, gDy.get() + shift, gX.get() + shift, gDw.get(), gDb.get());
    got[shift][0].resize(N * C);
    SIEVE_CUDA(cudaMemcpy(got[shift][0].data(), gDx.get() + shift, sizeof(float) * N * C, cudaMemcpyDeviceToHost));
    got[shift][1] = gDw.download(), got[shift][2] = gDb.download();
  }
  const std::string s = shape(name, N, C) + " fused";
  same_bits(c, s + " dinp", got[0][0], got[1][0]);
  same_bits(c, s + " dweight", got[0][1], got[1][1]);
  same_bits(c, s + " dbias", got[0][2], got[1][2]);  // rmsnorm leaves it as it was
}

// rows past a chunk, a last chunk of one row, C not a multiple of 16 (lanes 4..15 short), GPT-2
// medium's C
const std::pair<int64_t, int64_t> kFusedShapes[] = {{37, 48}, {65, 20}, {1000, 768}, {129, 1024}, {3, 4}};

SIEVE_GPU_CHECK(layernorm_backward_fused_matches_rows) {
  for (const auto& nc : kFusedShapes) {
    const int64_t N = nc.first, C = nc.second;
    const auto x = rows_input(N, C), w = normal(C);
    std::vector<float> out(N * C), mean(N), rstd(N);
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), normal(C).data(), 1e-5f, N, C);
    auto gW = to_device(w), gMean = to_device(mean), gRstd = to_device(rstd);
    DeviceBuffer<float> scratch((int64_t)gpu::norm_backward_scratch_floats(N, C));
    norm_fused_case(c, "layernorm", x, N, C, [&](float* dx, const float* dy, const float* xs, float* dw, float* db) {
      gpu::layernorm_backward(dx, dw, db, dy, xs, gMean.get(), gRstd.get(), gW.get(), scratch.get(), N, C, 0);
    });
  }
}

SIEVE_GPU_CHECK(rmsnorm_backward_fused_matches_rows) {
  for (const auto& nc : kFusedShapes) {
    const int64_t N = nc.first, C = nc.second;
    const auto x = rows_input(N, C), w = normal(C);
    std::vector<float> out(N * C), rstd(N);
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), 1e-6f, N, C);
    auto gW = to_device(w), gRstd = to_device(rstd);
    DeviceBuffer<float> scratch((int64_t)gpu::norm_backward_scratch_floats(N, C));
    norm_fused_case(c, "rmsnorm", x, N, C, [&](float* dx, const float* dy, const float* xs, float* dw, float*) {
      gpu::rmsnorm_backward(dx, dw, dy, xs, gRstd.get(), gW.get(), scratch.get(), N, C, 0);
    });
  }
}

SIEVE_GPU_CHECK(layernorm_matches_cpu) {
  for (auto [N, C] : kNormShapes) layernorm_case(c, N, C);
}

SIEVE_GPU_CHECK(rmsnorm_matches_cpu) {
  for (auto [N, C] : kNormShapes) rmsnorm_case(c, N, C);
}

SIEVE_GPU_CHECK(gelu_matches_cpu_bitwise) {
  for (int64_t n : {int64_t(1), int64_t(37 * 48), int64_t(1000 * 3072 + 5)}) gelu_case(c, n);
}

SIEVE_GPU_CHECK(swiglu_matches_cpu_bitwise) {
  swiglu_case(c, 37, 48);
  swiglu_case(c, 1000, 1375);
}

SIEVE_GPU_CHECK(residual_bias_matches_cpu_bitwise) {
  for (auto [N, C] : kNormShapes) {
    const auto res = normal(N * C), bias = normal(C);
    auto dRes = to_device(res), dBias = to_device(bias);
    DeviceBuffer<float> gOut(N * C);
    for (bool with_bias : {true, false}) {
      std::vector<float> out(N * C);
      cpu::residual_bias_forward(out.data(), res.data(), with_bias ? bias.data() : nullptr, N, C);
      gpu::residual_bias_forward(gOut.get(), dRes.get(), with_bias ? dBias.get() : nullptr, N, C, 0);
      c.equal(shape(with_bias ? "residual+bias" : "residual", N, C), gOut.download(), out);
    }
    std::vector<float> in_place = res;  // out == res (inference)
    cpu::residual_bias_forward(in_place.data(), in_place.data(), bias.data(), N, C);
    gpu::residual_bias_forward(dRes.get(), dRes.get(), dBias.get(), N, C, 0);
    c.equal(shape("residual+bias in place", N, C), dRes.download(), in_place);
  }
}

SIEVE_GPU_CHECK(bias_backward_matches_cpu_bitwise) {
  const std::pair<int64_t, int64_t> shapes[] = {{37, 48}, {64, 50}, {65, 50}, {1000, 2304}};
  for (auto [N, OC] : shapes) {
    const auto dout = normal(N * OC), db0 = normal(OC);
    std::vector<float> db = db0;
    cpu::matmul_backward(nullptr, nullptr, db.data(), dout.data(), nullptr, nullptr, N, 1, OC, nullptr);
    auto dDout = to_device(dout);
    DeviceBuffer<float> gDb(OC), scratch((int64_t)gpu::bias_backward_scratch_floats(N, OC));
    DeviceBuffer<bf16> gBf(N * OC);
    std::vector<float> runs[2];
    for (int k = 0; k < 2; k++) {  // the second run without the bf16 copy
      gDb.upload(db0);
      gpu::bias_backward(gDb.get(), k == 0 ? gBf.get() : nullptr, dDout.get(), scratch.get(), N, OC, 0);
      runs[k] = gDb.download();
    }
    c.equal(shape("dbias", N, OC), runs[0], db);
    c.equal(shape("dout's bf16 copy", N, OC), to_float(gBf.download()), rounded(dout));
    same_bits(c, shape("dbias", N, OC), runs[0], runs[1]);
  }
}

// GELU's backward, fused with the up layer's dbias, against the two CPU passes it stands for, with
// and without the fp32 dinp.
SIEVE_GPU_CHECK(gelu_backward_bias_matches_cpu_bitwise) {
  const std::pair<int64_t, int64_t> shapes[] = {{37, 48}, {64, 50}, {65, 50}, {1000, 3072}};
  for (auto [N, H] : shapes) {
    const auto x = activation_input(N * H), dy = normal(N * H), db0 = normal(H);
    std::vector<float> dx(N * H), db = db0;
    cpu::gelu_backward(dx.data(), dy.data(), x.data(), N * H);
    cpu::matmul_backward(nullptr, nullptr, db.data(), dx.data(), nullptr, nullptr, N, 1, H, nullptr);
    auto dX = to_device(x), dDy = to_device(dy);
    DeviceBuffer<float> gDb(H), gDx(N * H), scratch((int64_t)gpu::bias_backward_scratch_floats(N, H));
    DeviceBuffer<bf16> gBf(N * H);
    for (bool with_fp32 : {true, false}) {
      const std::string s = shape(with_fp32 ? "gelu+dbias" : "gelu+dbias (bf16 only)", N, H);
      gDb.upload(db0);
      gpu::gelu_backward_bias(gDb.get(), with_fp32 ? gDx.get() : nullptr, gBf.get(), dDy.get(), dX.get(),
                              scratch.get(), N, H, 0);
      c.equal(s + " dbias", gDb.download(), db);
      c.equal(s + " dinp bf16", to_float(gBf.download()), rounded(dx));
      if (with_fp32) c.equal(s + " dinp", gDx.download(), dx);
    }
  }
}

namespace {

// Tokens in [0, V): a quarter from a handful of ids, so ids repeat many times (the collisions
// of a real batch), the rest uniform.
std::vector<int32_t> random_tokens(int64_t n, int64_t V) {
  std::uniform_int_distribution<int32_t> any(0, (int32_t)V - 1), few(0, (int32_t)std::min<int64_t>(V, 5) - 1);
  std::uniform_int_distribution<int> pick(0, 3);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = pick(sieve::gpu_check::rng()) == 0 ? few(sieve::gpu_check::rng()) : any(sieve::gpu_check::rng());
  return t;
}

void embedding_case(Check& c, gpu::EmbeddingPlan& plan, int64_t B, int64_t T, int64_t C, int64_t V) {
  const auto tokens = random_tokens(B * T, V);
  const auto wte = normal(V * C), wpe = normal(T * C), dout = normal(B * T * C);
  const auto dwte0 = normal(V * C), dwpe0 = normal(T * C);
  plan.build(tokens.data(), B, T, 0);
  auto dWte = to_device(wte), dWpe = to_device(wpe), dDout = to_device(dout);
  DeviceBuffer<float> gOut(B * T * C), gDwte(V * C), gDwpe(T * C);
  const std::string s = "embedding B=" + std::to_string(B) + " T=" + std::to_string(T) + " C=" + std::to_string(C) +
                        " V=" + std::to_string(V);
  for (bool with_wpe : {true, false}) {
    std::vector<float> out(B * T * C);
    cpu::embedding_forward(out.data(), tokens.data(), wte.data(), with_wpe ? wpe.data() : nullptr, B, T, C);
    gpu::embedding_forward(gOut.get(), plan.tokens(), dWte.get(), with_wpe ? dWpe.get() : nullptr, B, T, C, 0);
    c.equal(s + (with_wpe ? " out" : " out (no wpe)"), gOut.download(), out);

    std::vector<float> dwte = dwte0, dwpe = dwpe0;
    cpu::embedding_backward(dwte.data(), with_wpe ? dwpe.data() : nullptr, dout.data(), tokens.data(), B, T, C, V);
    std::vector<float> runs[2][2];
    for (auto& run : runs) {
      gDwte.upload(dwte0);
      gDwpe.upload(dwpe0);
      plan.backward(gDwte.get(), with_wpe ? gDwpe.get() : nullptr, dDout.get(), C, 0);
      run[0] = gDwte.download(), run[1] = gDwpe.download();
    }
    c.equal(s + (with_wpe ? " dwte" : " dwte (no wpe)"), runs[0][0], dwte);
    c.equal(s + (with_wpe ? " dwpe" : " dwpe untouched"), runs[0][1], dwpe);
    for (int k = 0; k < 2; k++) same_bits(c, s + " backward", runs[0][k], runs[1][k]);
  }
}

}  // namespace

SIEVE_GPU_CHECK(embedding_matches_cpu_bitwise) {
  gpu::EmbeddingPlan plan;  // one plan, rebuilt: it grows, then serves a smaller batch
  embedding_case(c, plan, 4, 37, 48, 50);
  embedding_case(c, plan, 8, 1000, 64, 50257);
  embedding_case(c, plan, 3, 37, 768, 256);
}

SIEVE_GPU_CHECK(rope_matches_cpu_bitwise) {
  struct Shape {
    int64_t B, T, C, NH;
  };
  for (const Shape& sh : {Shape{3, 37, 48, 4}, Shape{2, 1000, 768, 12}}) {
    const int64_t HS = sh.C / sh.NH, n = sh.B * sh.T * 3 * sh.C;
    std::vector<float> cos_t(sh.T * HS / 2), sin_t(sh.T * HS / 2);
    cpu::rope_tables(cos_t.data(), sin_t.data(), 10000.0, sh.T, HS);
    auto dCos = to_device(cos_t), dSin = to_device(sin_t);
    const std::string s = "rope B=" + std::to_string(sh.B) + " T=" + std::to_string(sh.T) + " C=" +
                          std::to_string(sh.C) + " NH=" + std::to_string(sh.NH);
    std::vector<float> qkv = normal(n);
    auto dQkv = to_device(qkv);
    cpu::rope_forward(qkv.data(), cos_t.data(), sin_t.data(), sh.B, sh.T, sh.C, sh.NH);
    gpu::rope_forward(dQkv.get(), dCos.get(), dSin.get(), sh.B, sh.T, sh.C, sh.NH, 0);
    c.equal(s + " forward", dQkv.download(), qkv);
    std::vector<float> dqkv = normal(n);
    auto dDqkv = to_device(dqkv);
    cpu::rope_backward(dqkv.data(), cos_t.data(), sin_t.data(), sh.B, sh.T, sh.C, sh.NH);
    gpu::rope_backward(dDqkv.get(), dCos.get(), dSin.get(), sh.B, sh.T, sh.C, sh.NH, 0);
    c.equal(s + " backward", dDqkv.download(), dqkv);
  }
}

namespace {

struct LossCase {
  int64_t rows, V;
  bool teacher, in_place;
  int64_t ld = 0;  // the rows' stride on the device (0: V); the padding holds NaN, which must stay unread
};

void loss_case(Check& c, const LossCase& lc) {
  const int64_t rows = lc.rows, V = lc.V;
  const float alpha = lc.teacher ? 0.6f : 0.0f, tau = lc.teacher ? 2.0f : 1.0f, dscale = 1.0f / 37.0f;
  const auto logits = normal(rows * V, 3.0f);
  std::vector<float> teacher;
  if (lc.teacher) {  // a teacher that mostly agrees with the student
    teacher = normal(rows * V, 2.0f);
    for (int64_t i = 0; i < rows * V; i++) teacher[i] += 0.5f * logits[i];
  }
  std::vector<int32_t> targets(rows);
  std::uniform_int_distribution<int32_t> pick(0, (int32_t)V - 1);
  for (int64_t r = 0; r < rows; r++) targets[r] = r % 7 == 3 ? -1 : pick(sieve::gpu_check::rng());  // -1: no target

  std::vector<float> ce(rows), kl(rows), dlogits(rows * V);
  for (int64_t r = 0; r < rows; r++) {
    const cpu::RowLoss l = cpu::loss_row(dlogits.data() + r * V, logits.data() + r * V, targets[r],
                                         lc.teacher ? teacher.data() + r * V : nullptr, alpha, tau, dscale, V);
    ce[r] = l.ce, kl[r] = l.kl;
  }

  const int64_t ld = lc.ld ? lc.ld : V;
  const auto pad = [&](const std::vector<float>& x) {
    std::vector<float> y(rows * ld, NAN);
    for (int64_t r = 0; r < rows; r++) std::copy(x.begin() + r * V, x.begin() + (r + 1) * V, y.begin() + r * ld);
    return y;
  };
  const std::string s = "loss rows=" + std::to_string(rows) + " V=" + std::to_string(V) +
                        (ld != V ? " ld=" + std::to_string(ld) : "") + (lc.teacher ? " kd" : "") +
                        (lc.in_place ? " in place" : "");
  const std::vector<float> padded = pad(logits);
  auto dLogits = to_device(padded);
  auto dTargets = to_device(targets);
  DeviceBuffer<float> dTeacher(lc.teacher ? rows * ld : 0), gD(rows * ld), gCe(rows), gKl(rows);
  DeviceBuffer<__nv_bfloat16> gBf(rows * ld);
  if (lc.teacher) dTeacher.upload(pad(teacher));
  std::vector<float> runs[2][3];
  for (auto& run : runs) {
    if (lc.in_place) dLogits.upload(padded);
    float* d = lc.in_place ? dLogits.get() : gD.get();
    SIEVE_CUDA(cudaMemset(gBf.get(), 0xff, rows * ld * sizeof(__nv_bfloat16)));  // NaNs, to be overwritten
    gpu::loss_rows(d, gBf.get(), gCe.get(), gKl.get(), dLogits.get(), dTargets.get(),
                   lc.teacher ? dTeacher.get() : nullptr, alpha, tau, dscale, rows, V, ld, 0);
    run[0] = gCe.download(), run[1] = gKl.download();
    const std::vector<float> out = lc.in_place ? dLogits.download() : gD.download();
    // the bf16 gradient: the fp32 one rounded, then zeros to ld
    std::vector<__nv_bfloat16> bf((size_t)(rows * ld));
    SIEVE_CUDA(cudaMemcpy(bf.data(), gBf.get(), bf.size() * sizeof(__nv_bfloat16), cudaMemcpyDeviceToHost));
    std::vector<float> want(rows * ld, 0.0f), got(rows * ld);
    for (int64_t i = 0; i < rows * ld; i++) got[i] = __bfloat162float(bf[i]);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < V; j++) want[r * ld + j] = __bfloat162float(__float2bfloat16_rn(out[r * ld + j]));
    c.equal(s + " dlogits bf16", got, want);
    run[2].resize(rows * V);
    for (int64_t r = 0; r < rows; r++) {
      std::copy(out.begin() + r * ld, out.begin() + r * ld + V, run[2].begin() + r * V);
      if (lc.in_place && !std::all_of(out.begin() + r * ld + V, out.begin() + (r + 1) * ld,
                                      [](float x) { return std::isnan(x); })) {
        c.expect(false, s + ": row " + std::to_string(r) + "'s columns past V were written");
        break;
      }
    }
  }
  c.close(s + " ce", runs[0][0], ce, kTolF32);
  if (lc.teacher)
    c.close(s + " kl", runs[0][1], kl, kTolF32);
  else
    c.equal(s + " kl", runs[0][1], kl);  // zeros
  c.close(s + " dlogits", runs[0][2], dlogits, kTolF32);
  for (int64_t r = 0; r < rows; r++)  // no target: exact zeros
    if (targets[r] < 0) {
      const auto* g = runs[0][2].data() + r * V;
      c.expect(runs[0][0][r] == 0.0f && runs[0][1][r] == 0.0f && std::all_of(g, g + V, [](float x) { return x == 0.0f; }),
               s + ": row " + std::to_string(r) + " has no target but a nonzero loss or gradient");
      break;
    }
  for (int k = 0; k < 3; k++) same_bits(c, s, runs[0][k], runs[1][k]);
}

}  // namespace

SIEVE_GPU_CHECK(loss_rows_matches_cpu) {
  for (const LossCase& lc : {LossCase{37, 50, false, false}, LossCase{37, 50, true, true}, LossCase{37, 256, true, false},
                             LossCase{64, 32000, true, true}, LossCase{1000, 50257, false, true},
                             LossCase{200, 50257, true, true}, LossCase{37, 50, true, false, 64},
                             LossCase{200, 50257, true, true, 50304}})
    loss_case(c, lc);
}

SIEVE_GPU_CHECK(to_bf16_matches_host_rounding) {
  for (int64_t n : {int64_t(1), int64_t(1000003)}) {
    auto x = normal(n, 10.0f);
    for (int64_t i = 0; i < n; i += 5) x[i] = std::ldexp(1.0f + (float)(2 * (i % 128) + 1) / 256.0f, (int)(i % 40) - 20);  // halfway between two bf16
    auto dX = to_device(x);
    DeviceBuffer<bf16> y(n);
    gpu::to_bf16(y.get(), dX.get(), n, 0);
    c.equal("to_bf16 n=" + std::to_string(n), to_float(y.download()), rounded(x));
  }
}
