// sparse_model.cc — the CPU model's 2:4 members (core/backend.h): masks recomputed from the
// parameters, mask statistics and counts, S-STE's sums, SLoRB's mean initialisation, and
// materialising a transform into the parameters. Each runs the kernels of sparsity.h on the
// model's own buffers, on the model's thread count; tensor lists arrive checked (core/api.cc).
#include <algorithm>
#include <vector>

#include "core/seams.h"
#include "model.h"
#include "sparsity.h"

namespace sieve::cpu {

void CpuModel::update_masks(int32_t method, const int64_t* tensors, int64_t n, int64_t* flips) {
  ThreadScope scope(model.threads);
  float* all = flat(SIEVE_BUFFER_MASKS);
  std::vector<float> fresh;
  for (int64_t i = 0; i < n; i++) {
    if (model.cancel.load(std::memory_order_relaxed)) fail(SIEVE_E_CANCELLED, "cancelled");
    const TensorEntry& t = net.tensors[tensors[i]];
    const int64_t R = t.shape[0], K = t.shape[1];
    fresh.resize(t.size);
    if (method == SIEVE_MASK_TRANSPOSABLE)
      mask24_transposable(fresh.data(), params.data + t.offset, R, K);
    else
      mask24_magnitude(fresh.data(), params.data + t.offset, R, K);
    float* mask = all + t.offset;
    flips[i] = mask_flips(mask, fresh.data(), t.size);
    std::copy(fresh.begin(), fresh.end(), mask);
  }
}

void CpuModel::mask_stats(const int64_t* tensors, int64_t n, double* pruned_abs, double* total_abs) {
  ThreadScope scope(model.threads);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    masked_abs_sums(&pruned_abs[i], &total_abs[i], params.data + t.offset, masks.empty() ? nullptr : masks.data + t.offset,
                    t.size);
  }
}

void CpuModel::count24(const int64_t* tensors, int64_t n, bool both_ways, int64_t* violations) {
  ThreadScope scope(model.threads);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    const float* w = params.data + t.offset;
    violations[i] = count24_along_rows(w, t.shape[0], t.shape[1]);
    if (both_ways) violations[i] += count24_along_cols(w, t.shape[0], t.shape[1]);
  }
}

void CpuModel::sste_dots(int64_t tensor, double* ws, double* ss) {
  ThreadScope scope(model.threads);
  const TensorEntry& t = net.tensors[tensor];
  cpu::sste_dots(ws, ss, params.data + t.offset, t.size);
}

void CpuModel::slorb_init_mean(const int64_t* tensors, int64_t n) {
  ThreadScope scope(model.threads);
  for (int64_t i = 0; i < n; i++) {
    const TensorEntry& t = net.tensors[tensors[i]];
    cpu::slorb_init_mean(params.data + net.tensors[t.slorb_s].offset, params.data + t.offset,
                         masks.empty() ? nullptr : masks.data + t.offset, t.shape[0], t.shape[1], net.cfg.slorb_k);
  }
}

void CpuModel::materialize(int64_t tensor) {
  ThreadScope scope(model.threads);
  const TensorEntry& t = net.tensors[tensor];
  const TransformInputs in = transform_inputs(tensor);
  std::vector<float> eff(t.size);
  transform_forward(eff.data(), in, t.transform, transform_state[tensor]);
  std::copy(eff.begin(), eff.end(), params.data + t.offset);
  if (transform_uses_scale(t.transform.kind)) {
    const TensorEntry& a = net.tensors[t.scale];
    std::fill(params.data + a.offset, params.data + a.offset + a.size, 1.0f);
  }
}

}  // namespace sieve::cpu
