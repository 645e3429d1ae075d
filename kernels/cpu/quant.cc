// quant.cc — RTN, GPTQ's rows and dequantization (quant.h).
//
// GPTQ here is the CPU reference: each row is processed on its own, and every column's
// scaled error is subtracted from the rest of the row at once (in double). The reference
// implementation's lazy column batches only reorder those subtractions for GPU memory
// traffic; the result is the same up to rounding.
#include "quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace sieve::cpu {

void quantize_rtn(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                  int64_t cols, const QuantGrid& grid) {
  const int64_t G = cols / grid.group;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t off = r * cols + g * grid.group;
      const float* mk = mask ? mask + off : nullptr;
      quant_group_params(&scales[r * G + g], &zeros[r * G + g], w + off, mk, grid.group, grid);
      for (int64_t i = 0; i < grid.group; i++)
        codes[off + i] = mk && mk[i] == 0.0f ? zeros[r * G + g]
                                             : quant_code(w[off + i], scales[r * G + g], zeros[r * G + g], grid);
    }
}

void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows, int64_t cols,
                int64_t group) {
  const int64_t G = cols / group;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < cols; i++) {
      const int64_t g = r * G + i / group;
      out[r * cols + i] = ((float)codes[r * cols + i] - (float)zeros[g]) * scales[g];
    }
}

void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
          int64_t rows, const QuantGrid& grid) {
  const int64_t n = plan.n, G = n / grid.group, g = grid.group;
  const std::vector<int64_t>& perm = plan.perm;
  const std::vector<double>& U = plan.U;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* wr = w + r * n;
    const float* mr = mask ? mask + r * n : nullptr;
    float* sc = scales + r * G;
    uint8_t* zp = zeros + r * G;
    uint8_t* cr = codes + r * n;
    auto kept = [&](int64_t c) { return gptq_kept(plan, mr, c); };
    // the row in quantization order, dead and masked weights as 0
    std::vector<double> x(n);
    for (int64_t j = 0; j < n; j++) x[j] = kept(perm[j]) ? (double)wr[perm[j]] : 0.0;
    std::vector<float> buf(g), bmask(g);
    for (int64_t j = 0; j < n; j++) {
      const int64_t c = perm[j];
      const int64_t grp = c / g;
      // in order (perm is the identity), a group's parameters come from its current
      // (error-updated) weights
      if (!plan.static_groups && c % g == 0) {
        for (int64_t i = 0; i < g; i++) {
          buf[i] = (float)x[c + i];
          bmask[i] = kept(c + i) ? 1.0f : 0.0f;
        }
        quant_group_params(&sc[grp], &zp[grp], buf.data(), bmask.data(), g, grid);
      }
      if (!kept(c)) {
        cr[c] = zp[grp];
        continue;
      }
      const float wf = (float)x[j];
      const uint8_t code = quant_code(wf, sc[grp], zp[grp], grid);
      cr[c] = code;
      const double q = (double)(((float)code - (float)zp[grp]) * sc[grp]);  // as dequantize gives it
      const double err = (x[j] - q) / U[j * n + j];
      const double* urow = U.data() + j * n;
      for (int64_t k = j + 1; k < n; k++) x[k] -= err * urow[k];
    }
  }
}

}  // namespace sieve::cpu
