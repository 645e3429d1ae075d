// quant_api.cc — the op-level weight-only quantization of sieve.h (sieve_quantize_rtn,
// sieve_dequantize, sieve_gptq) on any device: the arguments are checked here, once, then the
// device's backend (backend_for) runs the op on host arrays. GPTQ's plan (core/quant.h: dead
// columns, damping, the factor, the order, static groups) is built here on the host, so every
// backend quantizes under the same one.
//
// Host work (the checks, the plan) runs on the op-level default thread count
// (sieve_set_default_threads), as the CPU backend's rows do.
#include <cmath>

#include "backend.h"
#include "cpu/backend.h"
#include "cpu/common.h"
#include "error.h"
#include "quant.h"

using namespace sieve;

namespace {

// A quantized weight: rows x cols in groups of `group` columns, bits in {2, 3, 4, 8}.
QuantGrid check_grid(int64_t rows, int64_t cols, int32_t bits, int64_t group, int32_t symmetric) {
  constexpr int64_t kMaxSize = int64_t(1) << 30;
  for (int64_t s : {rows, cols, group})
    SIEVE_CHECK(s >= 1 && s <= kMaxSize, "sizes must be in [1, 2^30], got %lld", (long long)s);
  SIEVE_CHECK(rows <= kMaxSize / cols, "rows*cols = %lld*%lld is too large (at most 2^30 elements)", (long long)rows,
              (long long)cols);
  SIEVE_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "bits must be 2, 3, 4 or 8, got %d", (int)bits);
  SIEVE_CHECK(cols % group == 0, "the group size %lld must divide cols = %lld", (long long)group, (long long)cols);
  SIEVE_CHECK(symmetric == 0 || symmetric == 1, "symmetric must be 0 or 1, got %d", (int)symmetric);
  return QuantGrid{bits, group, symmetric == 1};
}

void check_finite(const float* w, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; i++)
    SIEVE_CHECK(std::isfinite(w[i]), "%s[%lld] is not finite (%g)", what, (long long)i, (double)w[i]);
}

}  // namespace

extern "C" {

int sieve_quantize_rtn(int32_t device, uint8_t* codes, float* scales, uint8_t* zeros, const float* w,
                       const float* mask, int64_t rows, int64_t cols, int32_t bits, int64_t group, int32_t symmetric) {
  return guarded([&] {
    check_ptr(codes, "codes"), check_ptr(scales, "scales"), check_ptr(zeros, "zeros"), check_ptr(w, "w");
    const QuantGrid grid = check_grid(rows, cols, bits, group, symmetric);
    check_finite(w, rows * cols, "w");
    const Backend& backend = backend_for(device);
    cpu::ThreadScope scope(cpu::default_threads());
    backend.quantize_rtn(codes, scales, zeros, w, mask, rows, cols, grid);
  });
}

int sieve_dequantize(int32_t device, float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros,
                     int64_t rows, int64_t cols, int32_t bits, int64_t group) {
  return guarded([&] {
    check_ptr(out, "out"), check_ptr(codes, "codes"), check_ptr(scales, "scales"), check_ptr(zeros, "zeros");
    const QuantGrid grid = check_grid(rows, cols, bits, group, 0);
    const int64_t G = cols / group;
    for (int64_t i = 0; i < rows * cols; i++)
      SIEVE_CHECK(codes[i] <= grid.maxq(), "codes[%lld] = %d is outside [0, %d] for %d bits", (long long)i,
                  (int)codes[i], grid.maxq(), (int)bits);
    for (int64_t i = 0; i < rows * G; i++) {
      SIEVE_CHECK(zeros[i] <= grid.maxq(), "zeros[%lld] = %d is outside [0, %d] for %d bits", (long long)i,
                  (int)zeros[i], grid.maxq(), (int)bits);
      SIEVE_CHECK(std::isfinite(scales[i]) && scales[i] > 0.0f, "scales[%lld] must be finite and > 0, got %g",
                  (long long)i, (double)scales[i]);
    }
    const Backend& backend = backend_for(device);
    cpu::ThreadScope scope(cpu::default_threads());
    backend.dequantize(out, codes, scales, zeros, rows, cols, group);
  });
}

int sieve_gptq(int32_t device, uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const double* hessian,
               const float* mask, int64_t rows, int64_t cols, int32_t bits, int64_t group, int32_t symmetric,
               double damp, int32_t act_order) {
  return guarded([&] {
    check_ptr(codes, "codes"), check_ptr(scales, "scales"), check_ptr(zeros, "zeros"), check_ptr(w, "w");
    check_ptr(hessian, "hessian");
    const QuantGrid grid = check_grid(rows, cols, bits, group, symmetric);
    SIEVE_CHECK(cols <= 32768, "GPTQ keeps a (cols, cols) Hessian: cols = %lld is more than 32768", (long long)cols);
    SIEVE_CHECK(std::isfinite(damp) && damp >= 0.0, "damp must be a finite number >= 0, got %g", damp);
    SIEVE_CHECK(act_order == 0 || act_order == 1, "act_order must be 0 or 1, got %d", (int)act_order);
    check_finite(w, rows * cols, "w");
    for (int64_t i = 0; i < cols; i++) {
      SIEVE_CHECK(hessian[i * cols + i] >= 0.0, "the Hessian's diagonal must be >= 0: hessian[%lld, %lld] = %g",
                  (long long)i, (long long)i, hessian[i * cols + i]);
      for (int64_t j = i; j < cols; j++)
        SIEVE_CHECK(std::isfinite(hessian[i * cols + j]), "hessian[%lld, %lld] is not finite (%g)", (long long)i,
                    (long long)j, hessian[i * cols + j]);
    }
    // the backend first: a device without one fails before the O(cols^3) factor
    const Backend& backend = backend_for(device);
    cpu::ThreadScope scope(cpu::default_threads());
    const GptqPlan plan = gptq_plan(hessian, cols, damp, act_order == 1);
    if (plan.static_groups) gptq_static_groups(scales, zeros, w, mask, plan, rows, grid);
    backend.gptq(codes, scales, zeros, w, mask, plan, rows, grid);
  });
}

}  // extern "C"
