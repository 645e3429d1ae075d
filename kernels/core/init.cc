// init.cc — initialisation on the host, handed to the backend one chunk at a time.
#include "init.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "rng.h"

namespace sieve {

namespace {

// Floats generated per write: bounds the host buffer whatever the tensor size. Even, so a
// Box-Muller pair never straddles two chunks.
constexpr int64_t kChunk = int64_t(1) << 20;

bool residual_projection(const std::string& name) {
  return name.find(".attn.out.weight") != std::string::npos || name.find(".mlp.proj.weight") != std::string::npos ||
         name.find(".mlp.down.weight") != std::string::npos;
}

// An adapter's initial value at flat index i of the tensor: SLoRB's P the block indicator
// (P[i, j] = 1 iff i k <= j < (i + 1) k), SLoRB's S zero, the weight scales one.
float adapter_value(const Layout& l, const TensorEntry& t, int64_t i) {
  switch (t.adapter) {
    case kSlorbP: {
      const int64_t row = i / t.shape[1], col = i % t.shape[1], k = l.cfg.slorb_k;
      return col >= row * k && col < (row + 1) * k ? 1.0f : 0.0f;
    }
    case kScale: return 1.0f;
  }
  return 0.0f;
}

void write_adapter(sieve_model& m, const TensorEntry& t, std::vector<float>& chunk) {
  for (int64_t c0 = 0; c0 < t.size; c0 += kChunk) {
    const int64_t n = std::min(kChunk, t.size - c0);
    chunk.resize(n);
    for (int64_t i = 0; i < n; i++) chunk[i] = adapter_value(m.layout, t, c0 + i);
    m.impl->write(SIEVE_BUFFER_PARAMS, t.offset + c0, n, chunk.data());
  }
}

}  // namespace

void init_scales(sieve_model& m) {
  std::vector<float> chunk;
  for (const TensorEntry& t : m.layout.tensors)
    if (t.adapter == kScale) write_adapter(m, t, chunk);
}

void init_weights(sieve_model& m, uint64_t seed) {
  const double std_base = 0.02;
  const double std_resid = 0.02 / std::sqrt(2.0 * (double)m.layout.L);
  std::vector<float> chunk;
  for (const TensorEntry& t : m.layout.tensors) {
    if (t.kind == SIEVE_KIND_ADAPTER) {
      write_adapter(m, t, chunk);
      continue;
    }
    const bool constant = t.kind == SIEVE_KIND_NORM || t.kind == SIEVE_KIND_BIAS;
    const double sd = residual_projection(t.name) ? std_resid : std_base;
    const uint64_t key = stream_key(seed, t.name);
    for (int64_t c0 = 0; c0 < t.size; c0 += kChunk) {
      const int64_t n = std::min(kChunk, t.size - c0);
      chunk.resize(n);
      if (constant) {
        std::fill(chunk.begin(), chunk.end(), t.kind == SIEVE_KIND_NORM ? 1.0f : 0.0f);
      } else {
        // On the model's threads: every value is a function of its index alone, so their number
        // changes no bit. On one core a value took ~27 ns (Box-Muller in double): half a minute
        // a billion parameters, for each model a GPU bench or a user creates.
#pragma omp parallel for schedule(static) num_threads(m.threads)
        for (int64_t i = 0; i < n; i += 2) {
          const NormalPair z = stream_normal_pair(key, (uint64_t)(c0 + i) / 2);
          chunk[i] = (float)(sd * z.even);
          if (i + 1 < n) chunk[i + 1] = (float)(sd * z.odd);
        }
      }
      m.impl->write(SIEVE_BUFFER_PARAMS, t.offset + c0, n, chunk.data());
    }
  }
}

}  // namespace sieve
