// bench/cpu/train.cc — sieve's half of target C6: GPT-2 training tokens/s on the CPU, through
// the engine's C ABI (kernels/include/sieve.h) alone, so it runs where there is no Node.js.
//
//   sieve_cpu_train [--threads N] [--configs 0.1M,1M,10M,43M] [--warmup W] [--steps S]
//                   [--max-seconds X] [--sgemm] [--json FILE]
//
// For each config: a GPT-2 model (byte vocabulary, tied LM head) initialised from seed 1, W
// warm-up steps, then S timed steps (fewer once X seconds have passed, but at least 3), each
// step zero_grad + forward_backward + AdamW optimizer_step as kernels/index.ts drives them.
// Prints one JSON object per config (tokens/s is the median over the timed steps), and appends
// it to FILE with --json. With --sgemm, also times every GEMM shape of the config's step, the
// engine's tile grid against OpenBLAS's own threaded sgemm at the same thread count (C1's
// reference), and prints one more row per config. bench/cpu/torch_train.py trains the same
// models in PyTorch; bench/cpu/run.sh puts the two side by side.
//
// OpenBLAS reads OPENBLAS_CORETYPE when the program starts; a CPU it does not know gets its
// generic "Prescott" kernels, several times slower: this program says so on stderr when the BLAS
// runs those on a CPU with AVX-512 (run.sh sets OPENBLAS_CORETYPE=SkylakeX there).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sieve.h"  // the engine's C ABI: sieve_model_*, sieve_backend, sieve_bench_sgemm

namespace {

struct Config {
  const char* name;
  int64_t layers, dim, heads, context, mlp_hidden;
  int64_t B, T;
};

// The three models of bench/engine.ts, and GPT-2 small's width at half its depth (the same
// GEMM shapes as GPT-2 small, half the time per step).
const Config kConfigs[] = {
    {"0.1M", 2, 64, 4, 128, 256, 32, 128},
    {"1M", 5, 128, 4, 128, 512, 32, 128},
    {"10M", 6, 384, 6, 256, 1536, 16, 256},
    {"43M", 6, 768, 12, 256, 3072, 16, 256},
};
constexpr int64_t kVocab = 256;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sieve_cpu_train: %s\n", what.c_str());
  std::exit(1);
}

void ok(int status, const char* call) {
  if (status != SIEVE_OK) die(std::string(call) + " failed: " + sieve_last_error());
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

std::string json_string(const char* s) {
  std::string out = "\"";
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\') out += '\\';
    out += *s;
  }
  return out + "\"";
}

bool cpu_has(const std::string& flag) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

struct Args {
  int threads = 0;
  std::vector<std::string> configs = {"0.1M", "1M", "10M", "43M"};
  int warmup = 2, steps = 5;
  double max_seconds = 20.0;
  bool sgemm = false;
  std::string json;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + k);
      return argv[++i];
    };
    if (k == "--threads") a.threads = std::atoi(value().c_str());
    else if (k == "--warmup") a.warmup = std::atoi(value().c_str());
    else if (k == "--steps") a.steps = std::atoi(value().c_str());
    else if (k == "--max-seconds") a.max_seconds = std::atof(value().c_str());
    else if (k == "--json") a.json = value();
    else if (k == "--sgemm") a.sgemm = true;
    else if (k == "--configs") {
      a.configs.clear();
      std::stringstream ss(value());
      for (std::string c; std::getline(ss, c, ',');) a.configs.push_back(c);
    } else die("unknown argument " + k + " (see the comment at the top of bench/cpu/train.cc)");
  }
  if (a.threads <= 0) a.threads = omp_get_max_threads();
  if (a.warmup < 0 || a.steps < 1) die("--warmup must be >= 0 and --steps >= 1");
  return a;
}

void emit(const Args& a, const std::string& row) {
  std::printf("%s\n", row.c_str());
  std::fflush(stdout);
  if (a.json.empty()) return;
  std::ofstream f(a.json, std::ios::app);
  if (!f) die("cannot append to " + a.json);
  f << row << "\n";
}

// Training tokens/s of one config: the median of the timed steps.
void train(const Args& a, const Config& c, const char* blas) {
  sieve_config cfg{};
  cfg.family = SIEVE_FAMILY_GPT2;
  cfg.layers = c.layers;
  cfg.dim = c.dim;
  cfg.heads = c.heads;
  cfg.context = c.context;
  cfg.vocab = kVocab;
  cfg.mlp_hidden = c.mlp_hidden;
  cfg.norm_eps = 1e-5f;
  sieve_model* m = nullptr;
  ok(sieve_model_create(&m, &cfg, SIEVE_DEVICE_CPU), "sieve_model_create");
  ok(sieve_model_set_threads(m, a.threads), "sieve_model_set_threads");
  ok(sieve_model_init(m, 1), "sieve_model_init");
  int64_t params = 0;
  ok(sieve_model_num_params(m, &params), "sieve_model_num_params");

  const int64_t tokens = c.B * c.T;
  std::vector<int32_t> data(tokens + 1);  // bench/engine.ts's token stream
  for (int64_t i = 0; i <= tokens; i++) data[i] = (int32_t)((i * 7919 + ((i * i) >> 3)) % kVocab);
  const sieve_loss_opts lopts{1.0f, 0.0f, 1.0f};
  sieve_optim_opts oopts{};
  oopts.lr = 1e-3f;
  oopts.beta1 = 0.9f;
  oopts.beta2 = 0.95f;
  oopts.eps = 1e-8f;
  oopts.weight_decay = 0.1f;
  oopts.grad_clip = 1.0f;
  sieve_loss loss{};
  auto step = [&] {
    ok(sieve_model_zero_grad(m), "sieve_model_zero_grad");
    ok(sieve_model_forward_backward(m, &loss, data.data(), data.data() + 1, nullptr, &lopts, c.B, c.T),
       "sieve_model_forward_backward");
    float norm = 0;
    ok(sieve_model_optimizer_step(m, &norm, &oopts), "sieve_model_optimizer_step");
  };
  for (int i = 0; i < a.warmup; i++) step();
  ok(sieve_model_reset_timers(m), "sieve_model_reset_timers");
  std::vector<double> secs;
  const double start = now();
  while ((int)secs.size() < a.steps && (secs.size() < 3 || now() - start < a.max_seconds)) {
    const double t0 = now();
    step();
    secs.push_back(now() - t0);
  }
  sieve_timers tm{};
  ok(sieve_model_timers(m, &tm), "sieve_model_timers");
  sieve_model_destroy(m);

  const double wall = now() - start, step_s = median(secs);
  char row[1024];
  std::snprintf(row, sizeof row,
                "{\"bench\": \"cpu-train\", \"engine\": \"sieve\", \"config\": \"%s\", \"threads\": %d, "
                "\"params\": %lld, \"B\": %lld, \"T\": %lld, \"tokens_per_s\": %.1f, \"step_ms\": %.2f, "
                "\"steps\": %zu, \"gemm_gflops\": %.1f, \"gemm_share\": %.3f, \"attention_share\": %.3f, "
                "\"loss\": %.4f, \"blas\": %s}",
                c.name, a.threads, (long long)params, (long long)c.B, (long long)c.T, tokens / step_s, 1e3 * step_s,
                secs.size(), tm.gemm_seconds > 0 ? tm.gemm_flops / tm.gemm_seconds / 1e9 : 0.0, tm.gemm_seconds / wall,
                tm.attention_seconds / wall, loss.loss, json_string(blas ? blas : "portable GEMM").c_str());
  emit(a, row);
}

// The step's GEMMs (as bench/engine.ts lists them): per linear layer forward, input gradient,
// weight gradient; the LM head once. Aggregate GFLOP/s of the engine's grid and of OpenBLAS's
// own threading, each shape weighted by how often a step runs it.
void sgemm_rates(const Args& a, const Config& c) {
  const int64_t N = c.B * c.T, C = c.dim, H = c.mlp_hidden;
  const int64_t lin[5][3] = {{3 * C, C, c.layers}, {C, C, c.layers}, {H, C, c.layers}, {C, H, c.layers}, {kVocab, C, 1}};
  double flops = 0, t_engine = 0, t_blas = 0;
  for (const auto& l : lin) {
    const int64_t OC = l[0], IC = l[1], count = l[2];
    const int64_t shapes[3][5] = {{0, 1, N, OC, IC}, {0, 0, N, IC, OC}, {1, 0, OC, IC, N}};
    for (const auto& s : shapes) {
      const double f = 2.0 * s[2] * s[3] * s[4];
      const int reps = (int)std::max(3.0, std::min(100.0, 5e9 * a.threads / f));  // ~50 ms a shape
      double e = 0, b = 0;
      ok(sieve_bench_sgemm(&b, (int32_t)s[0], (int32_t)s[1], s[2], s[3], s[4], reps, a.threads, 0), "sieve_bench_sgemm");
      ok(sieve_bench_sgemm(&e, (int32_t)s[0], (int32_t)s[1], s[2], s[3], s[4], reps, a.threads, 1), "sieve_bench_sgemm");
      flops += count * f;
      t_engine += count * e;
      t_blas += count * b;
    }
  }
  char row[512];
  std::snprintf(row, sizeof row,
                "{\"bench\": \"cpu-sgemm\", \"config\": \"%s\", \"threads\": %d, \"engine_gflops\": %.1f, "
                "\"openblas_threaded_gflops\": %.1f, \"ratio\": %.3f}",
                c.name, a.threads, flops / t_engine / 1e9, flops / t_blas / 1e9, t_blas / t_engine);
  emit(a, row);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse(argc, argv);
  ok(sieve_set_default_threads(a.threads), "sieve_set_default_threads");
  sieve_backend_info info{};
  ok(sieve_backend(SIEVE_DEVICE_CPU, &info), "sieve_backend");
  std::fprintf(stderr, "sieve_cpu_train: %d threads, BLAS %s\n", a.threads, info.blas ? info.blas : "none (portable GEMM)");
  if (info.blas && std::strstr(info.blas, "Prescott") && cpu_has("avx512f"))
    std::fprintf(stderr,
                 "sieve_cpu_train: WARNING: OpenBLAS runs its generic Prescott kernels on a CPU with AVX-512 "
                 "(several times slower); set OPENBLAS_CORETYPE=SkylakeX\n");
  for (const std::string& name : a.configs) {
    const Config* c = nullptr;
    for (const Config& k : kConfigs)
      if (name == k.name) c = &k;
    if (!c) die("unknown config " + name + " (0.1M, 1M, 10M or 43M)");
    train(a, *c, info.blas);
    if (a.sgemm) sgemm_rates(a, *c);
  }
  return 0;
}
