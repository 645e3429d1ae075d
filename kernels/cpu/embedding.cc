// embedding.cc — token (+ learned position) embeddings.
//
// The backward is a scatter-add with collisions (a token id appears many times). It is made
// deterministic without atomics: positions are bucketed by token id (a stable counting
// sort), then each vocabulary row is owned by one thread and sums its positions in
// increasing order. Position rows likewise sum over the batch in order.
#include <vector>

#include "ops.h"

namespace sieve::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, const float* wpe, int64_t B,
                       int64_t T, int64_t C) {
#pragma omp parallel for schedule(static)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const float* e = wte + (int64_t)tokens[bt] * C;
    float* o = out + bt * C;
    if (wpe) {
      const float* p = wpe + (bt % T) * C;
      for (int64_t c = 0; c < C; c++) o[c] = e[c] + p[c];
    } else {
      for (int64_t c = 0; c < C; c++) o[c] = e[c];
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const int32_t* tokens, int64_t B,
                        int64_t T, int64_t C, int64_t V) {
  const int64_t n = B * T;
  std::vector<int64_t> start(V + 1, 0), order(n);
  for (int64_t i = 0; i < n; i++) start[tokens[i] + 1]++;
  for (int64_t v = 0; v < V; v++) start[v + 1] += start[v];
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < n; i++) order[fill[tokens[i]]++] = i;
  }
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t v = 0; v < V; v++) {
    if (start[v] == start[v + 1]) continue;
    float* g = dwte + v * C;
    for (int64_t s = start[v]; s < start[v + 1]; s++) {
      const float* d = dout + order[s] * C;
      for (int64_t c = 0; c < C; c++) g[c] += d[c];
    }
  }
  if (dwpe) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
      float* g = dwpe + t * C;
      for (int64_t b = 0; b < B; b++) {
        const float* d = dout + (b * T + t) * C;
        for (int64_t c = 0; c < C; c++) g[c] += d[c];
      }
    }
  }
}

}  // namespace sieve::cpu
