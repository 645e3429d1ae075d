// api.cc — the model-level extern "C" functions of sieve.h, the same for every device.
//
// Every function: checks its arguments (one clear sentence per problem), takes the model's
// busy flag when it touches state (two overlapping calls on one model are refused, not
// raced), then calls the backend through core/backend.h, all inside guarded() so any
// failure comes back as a status and sieve_last_error(). Nothing here exits, aborts or
// prints, and nothing here depends on where the model's numbers live.
#include <cmath>
#include <utility>
#include <vector>

#include "backend.h"
#include "error.h"
#include "init.h"
#include "layout.h"
#include "model.h"
#include "schedule.h"
#include "seams.h"

namespace sieve {

namespace {

// Holds the model's busy flag for one call.
class BusyGuard {
 public:
  explicit BusyGuard(sieve_model* m) : m_(m) {
    if (m_->busy.exchange(1)) fail(SIEVE_E_STATE, "model is busy: another call on it is still running");
  }
  ~BusyGuard() { m_->busy.store(0); }

 private:
  sieve_model* m_;
};

sieve_model& model_ref(sieve_model* m) {
  if (!m) fail(SIEVE_E_INVALID_ARGUMENT, "model is NULL");
  return *m;
}
const sieve_model& model_ref(const sieve_model* m) {
  if (!m) fail(SIEVE_E_INVALID_ARGUMENT, "model is NULL");
  return *m;
}

void check_tensor_index(const sieve_model& m, int64_t i) {
  const int64_t n = (int64_t)m.layout.tensors.size();
  SIEVE_CHECK(i >= 0 && i < n, "tensor index %lld is out of range [0, %lld)", (long long)i, (long long)n);
}

int64_t tensor_index(const sieve_model& m, const char* name) {
  check_ptr(name, "name");
  auto it = m.layout.by_name.find(name);
  if (it == m.layout.by_name.end()) fail(SIEVE_E_INVALID_ARGUMENT, "this model has no tensor named '%s'", name);
  return it->second;
}

void check_buffer(int32_t which) {
  SIEVE_CHECK(which >= SIEVE_BUFFER_PARAMS && which <= SIEVE_BUFFER_ADAM_V,
              "unknown buffer %d: expected params (0), grads (1), masks (2), m (3) or v (4)", (int)which);
}

void check_range(const sieve_model& m, int32_t which, int64_t offset, int64_t count, const void* data,
                 const char* what) {
  check_buffer(which);
  const int64_t P = m.layout.num_params;
  SIEVE_CHECK(offset >= 0, "offset must be >= 0, got %lld", (long long)offset);
  SIEVE_CHECK(count >= 0, "count must be >= 0, got %lld", (long long)count);
  SIEVE_CHECK(offset <= P && count <= P - offset, "[%lld, %lld + %lld) is outside the buffer of P = %lld floats",
              (long long)offset, (long long)offset, (long long)count, (long long)P);
  if (count > 0) check_ptr(data, what);
}

void check_tensor_count(const TensorEntry& t, int64_t count) {
  SIEVE_CHECK(count == t.size, "tensor '%s' has %lld floats, but count is %lld", t.name.c_str(), (long long)t.size,
              (long long)count);
}

constexpr int64_t kMaxTokens = int64_t(1) << 24;

void check_batch(const sieve_model& m, int64_t B, int64_t T, int64_t min_T) {
  SIEVE_CHECK(B >= 1, "B must be at least 1, got %lld", (long long)B);
  SIEVE_CHECK(T >= min_T, "T must be at least %lld, got %lld", (long long)min_T, (long long)T);
  SIEVE_CHECK(T <= m.layout.cfg.context, "T = %lld exceeds the model's context (%lld)", (long long)T,
              (long long)m.layout.cfg.context);
  SIEVE_CHECK(B <= kMaxTokens / T, "B*T = %lld tokens is too many for one call (at most %lld)",
              (long long)(B * T), (long long)kMaxTokens);
}

void check_threads(int32_t threads) {
  SIEVE_CHECK(threads >= 1 && threads <= 1024, "threads must be in [1, 1024], got %d", (int)threads);
}

// A list of tensor indices (n >= 0 of them), each in range.
void check_tensor_list(const sieve_model& m, const int64_t* tensors, int64_t n) {
  SIEVE_CHECK(n >= 0, "n must be >= 0, got %lld", (long long)n);
  if (n == 0) return;
  check_ptr(tensors, "tensors");
  for (int64_t i = 0; i < n; i++) {
    const int64_t count = (int64_t)m.layout.tensors.size();
    SIEVE_CHECK(tensors[i] >= 0 && tensors[i] < count, "tensors[%lld] = %lld is out of range [0, %lld)", (long long)i,
                (long long)tensors[i], (long long)count);
  }
}

// A linear weight with 2:4 groups along its input dim (and along its output dim when both).
const TensorEntry& check_linear24(const sieve_model& m, int64_t tensor, bool both, const char* what) {
  const TensorEntry& t = m.layout.tensors[tensor];
  SIEVE_CHECK(t.kind == SIEVE_KIND_LINEAR, "tensor '%s' is not a linear weight: only linear weights take %s",
              t.name.c_str(), what);
  SIEVE_CHECK(t.shape[1] % 4 == 0, "tensor '%s' [%lld, %lld] has no 2:4 groups along its input dim: %lld is not a multiple of 4",
              t.name.c_str(), (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[1]);
  if (both)
    SIEVE_CHECK(t.shape[0] % 4 == 0,
                "tensor '%s' [%lld, %lld] has no 2:4 groups along its output dim: %lld is not a multiple of 4",
                t.name.c_str(), (long long)t.shape[0], (long long)t.shape[1], (long long)t.shape[0]);
  return t;
}

// Stores a validated seam setting and lets the backend prepare for it; a backend that
// cannot (out of memory) leaves the tensor with its previous setting.
void set_seam(sieve_model& m, int64_t tensor, Seam seam, int32_t kind, const float* params, int64_t n) {
  TensorEntry& t = m.layout.tensors[tensor];
  SeamSpec& slot = seam == Seam::transform ? t.transform : seam == Seam::hook ? t.hook : t.rule;
  SeamSpec before = std::exchange(slot, SeamSpec{kind, std::vector<float>(params, params + n)});
  try {
    m.impl->seam_changed(tensor, seam);
  } catch (...) {
    slot = std::move(before);
    throw;
  }
}

}  // namespace

}  // namespace sieve

using namespace sieve;

extern "C" {

const char* sieve_last_error(void) { return last_error(); }

int sieve_backend(int32_t device, sieve_backend_info* out) {
  return guarded([&] {
    check_ptr(out, "out");
    backend_for(device).info(out);
  });
}

int sieve_config_check(const sieve_config* config) {
  return guarded([&] {
    check_ptr(config, "config");
    config_check(*config);
  });
}

// ---------------------------------------------------------------- lifecycle and table

int sieve_model_create(sieve_model** out, const sieve_config* config, int32_t device) {
  return guarded([&] {
    check_ptr(out, "out");
    check_ptr(config, "config");
    *out = nullptr;
    config_check(*config);
    const Backend& backend = backend_for(device);
    auto m = std::make_unique<sieve_model>();
    m->layout = layout_build(*config);
    m->backend = &backend;
    sieve_backend_info info{};
    backend.info(&info);
    m->threads = info.default_threads;
    m->impl = backend.create_model(*m);
    init_scales(*m);  // weight scales start at the identity; every other tensor at zero
    *out = m.release();
  });
}

void sieve_model_destroy(sieve_model* model) { delete model; }

int sieve_model_device(const sieve_model* model, int32_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).backend->device();
  });
}

int sieve_model_num_params(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).layout.num_params;
  });
}

int sieve_model_num_tensors(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = (int64_t)model_ref(model).layout.tensors.size();
  });
}

int sieve_model_tensor(const sieve_model* model, int64_t index, sieve_tensor_info* out) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    check_tensor_index(m, index);
    const TensorEntry& t = m.layout.tensors[index];
    out->name = t.name.c_str();
    out->offset = t.offset;
    out->size = t.size;
    out->ndim = t.ndim;
    out->shape[0] = t.shape[0];
    out->shape[1] = t.shape[1];
    out->kind = t.kind;
    out->scope = t.scope;
    out->decay = t.decay;
  });
}

int sieve_model_find_tensor(const sieve_model* model, const char* name, int64_t* index) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    const int64_t i = tensor_index(m, name);
    check_ptr(index, "index");
    *index = i;
  });
}

// ---------------------------------------------------------------- copies in and out

int sieve_model_read(sieve_model* model, int32_t which, int64_t offset, int64_t count, float* dst) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_range(m, which, offset, count, dst, "dst");
    BusyGuard busy(&m);
    m.impl->read(which, offset, count, dst);
  });
}

int sieve_model_write(sieve_model* model, int32_t which, int64_t offset, int64_t count, const float* src) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_range(m, which, offset, count, src, "src");
    BusyGuard busy(&m);
    m.impl->write(which, offset, count, src);
  });
}

int sieve_model_read_tensor(sieve_model* model, const char* name, int32_t which, float* dst, int64_t count) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    const TensorEntry& t = m.layout.tensors[tensor_index(m, name)];
    check_tensor_count(t, count);
    check_range(m, which, t.offset, count, dst, "dst");
    BusyGuard busy(&m);
    m.impl->read(which, t.offset, count, dst);
  });
}

int sieve_model_write_tensor(sieve_model* model, const char* name, int32_t which, const float* src, int64_t count) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    const TensorEntry& t = m.layout.tensors[tensor_index(m, name)];
    check_tensor_count(t, count);
    check_range(m, which, t.offset, count, src, "src");
    BusyGuard busy(&m);
    m.impl->write(which, t.offset, count, src);
  });
}

// ---------------------------------------------------------------- settings

int sieve_model_set_threads(sieve_model* model, int32_t threads) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_threads(threads);
    BusyGuard busy(&m);
    m.threads = threads;
  });
}

int sieve_model_get_threads(const sieve_model* model, int32_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).threads;
  });
}

int sieve_model_init(sieve_model* model, uint64_t seed) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    init_weights(m, seed);
  });
}

int sieve_model_get_step(const sieve_model* model, int64_t* out) {
  return guarded([&] {
    check_ptr(out, "out");
    *out = model_ref(model).step;
  });
}

int sieve_model_set_step(sieve_model* model, int64_t step) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    SIEVE_CHECK(step >= 0, "step must be >= 0, got %lld", (long long)step);
    BusyGuard busy(&m);
    m.step = step;
  });
}

// ---------------------------------------------------------------- seams

int sieve_model_set_transform(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_seam_params(params, n_params);
    const TensorEntry& t = m.layout.tensors[tensor];
    SIEVE_CHECK(t.kind == SIEVE_KIND_LINEAR,
                "tensor '%s' is not a linear weight: only linear weights take a weight transform", t.name.c_str());
    transform_validate(kind, params, n_params, t.name);
    transform_check_tensor(kind, t);
    BusyGuard busy(&m);
    set_seam(m, tensor, Seam::transform, kind, params, n_params);
  });
}

int sieve_model_set_grad_hook(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_seam_params(params, n_params);
    grad_hook_validate(kind, params, n_params, m.layout.tensors[tensor].name);
    BusyGuard busy(&m);
    set_seam(m, tensor, Seam::hook, kind, params, n_params);
  });
}

int sieve_model_set_update_rule(sieve_model* model, int64_t tensor, int32_t kind, const float* params,
                                int64_t n_params) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    check_seam_params(params, n_params);
    update_rule_validate(kind, params, n_params, m.layout.tensors[tensor].name);
    BusyGuard busy(&m);
    set_seam(m, tensor, Seam::rule, kind, params, n_params);
  });
}

// ---------------------------------------------------------------- training

int sieve_model_zero_grad(sieve_model* model) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    m.impl->zero_grad();
    m.micro = 0;
  });
}

int sieve_model_forward_backward(sieve_model* model, sieve_loss* out, const int32_t* inputs, const int32_t* targets,
                                 const float* teacher_logits, const sieve_loss_opts* opts, int64_t B, int64_t T) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    check_ptr(inputs, "inputs");
    check_ptr(targets, "targets");
    check_ptr(opts, "opts");
    check_batch(m, B, T, 1);
    SIEVE_CHECK(std::isfinite(opts->loss_scale), "loss_scale must be finite, got %g", (double)opts->loss_scale);
    if (teacher_logits) {
      SIEVE_CHECK(opts->kd_alpha >= 0.0f && opts->kd_alpha <= 1.0f, "kd_alpha must be in [0, 1], got %g",
                  (double)opts->kd_alpha);
      SIEVE_CHECK(std::isfinite(opts->kd_tau) && opts->kd_tau > 0.0f, "kd_tau must be a finite number > 0, got %g",
                  (double)opts->kd_tau);
    }
    check_tokens(inputs, B * T, m.layout.V, "inputs", false);
    check_tokens(targets, B * T, m.layout.V, "targets", true);
    bool any = false;
    for (int64_t i = 0; i < B * T && !any; i++) any = targets[i] >= 0;
    SIEVE_CHECK(any, "every target is -1: the batch has nothing to predict");
    BusyGuard busy(&m);
    // micro counts this call whatever its outcome (a failed call leaves partial gradients,
    // which the caller zeroes, resetting the count)
    struct Count {
      int64_t& micro;
      ~Count() { micro += 1; }
    } count{m.micro};
    *out = m.impl->forward_backward(inputs, targets, teacher_logits, *opts, B, T);
  });
}

int sieve_model_optimizer_step(sieve_model* model, float* grad_norm, const sieve_optim_opts* opts) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(grad_norm, "grad_norm");
    check_ptr(opts, "opts");
    const sieve_optim_opts& o = *opts;
    SIEVE_CHECK(std::isfinite(o.lr) && o.lr >= 0.0f, "lr must be a finite number >= 0, got %g", (double)o.lr);
    SIEVE_CHECK(o.beta1 >= 0.0f && o.beta1 < 1.0f, "beta1 must be in [0, 1), got %g", (double)o.beta1);
    SIEVE_CHECK(o.beta2 >= 0.0f && o.beta2 < 1.0f, "beta2 must be in [0, 1), got %g", (double)o.beta2);
    SIEVE_CHECK(std::isfinite(o.eps) && o.eps > 0.0f, "eps must be a finite number > 0, got %g", (double)o.eps);
    SIEVE_CHECK(std::isfinite(o.weight_decay) && o.weight_decay >= 0.0f,
                "weight_decay must be a finite number >= 0, got %g", (double)o.weight_decay);
    SIEVE_CHECK(!std::isnan(o.grad_clip), "grad_clip must be a number (<= 0 disables clipping)");
    SIEVE_CHECK(o.skip_nonfinite == 0 || o.skip_nonfinite == 1, "skip_nonfinite must be 0 or 1, got %d", (int)o.skip_nonfinite);
    BusyGuard busy(&m);
    const float norm = m.impl->optimizer_step(o, m.step + 1);
    *grad_norm = norm;
    // A skipped step is no step: Adam's bias correction counts the updates actually applied.
    if (!(o.skip_nonfinite && !std::isfinite(norm))) m.step += 1;
  });
}

// ---------------------------------------------------------------- 2:4 sparsity

int sieve_model_update_masks(sieve_model* model, int32_t method, const int64_t* tensors, int64_t n, int64_t* flips) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    SIEVE_CHECK(method == SIEVE_MASK_MAGNITUDE || method == SIEVE_MASK_TRANSPOSABLE,
                "unknown mask method %d: expected magnitude (%d) or transposable (%d)", (int)method,
                SIEVE_MASK_MAGNITUDE, SIEVE_MASK_TRANSPOSABLE);
    check_tensor_list(m, tensors, n);
    if (n > 0) check_ptr(flips, "flips");
    for (int64_t i = 0; i < n; i++) check_linear24(m, tensors[i], method == SIEVE_MASK_TRANSPOSABLE, "a 2:4 mask");
    BusyGuard busy(&m);
    m.impl->update_masks(method, tensors, n, flips);
  });
}

int sieve_model_mask_stats(sieve_model* model, const int64_t* tensors, int64_t n, double* pruned_abs,
                           double* total_abs) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_list(m, tensors, n);
    if (n > 0) check_ptr(pruned_abs, "pruned_abs"), check_ptr(total_abs, "total_abs");
    BusyGuard busy(&m);
    m.impl->mask_stats(tensors, n, pruned_abs, total_abs);
  });
}

int sieve_model_count24(sieve_model* model, const int64_t* tensors, int64_t n, int32_t both_ways,
                        int64_t* violations) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    SIEVE_CHECK(both_ways == 0 || both_ways == 1, "both_ways must be 0 or 1, got %d", (int)both_ways);
    check_tensor_list(m, tensors, n);
    if (n > 0) check_ptr(violations, "violations");
    for (int64_t i = 0; i < n; i++) check_linear24(m, tensors[i], both_ways == 1, "a 2:4 count");
    BusyGuard busy(&m);
    m.impl->count24(tensors, n, both_ways == 1, violations);
  });
}

int sieve_model_sste_beta(sieve_model* model, int64_t tensor, double* beta) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(beta, "beta");
    check_tensor_index(m, tensor);
    const TensorEntry& t = check_linear24(m, tensor, false, "an S-STE scale");
    BusyGuard busy(&m);
    double ws = 0, ss = 0;
    m.impl->sste_dots(tensor, &ws, &ss);
    SIEVE_CHECK(ss > 0.0, "S(W) of tensor '%s' is all zero (every group's 2nd and 3rd largest |w| are tied): its "
                "S-STE beta is undefined", t.name.c_str());
    const double b = ws / ss;
    SIEVE_CHECK(std::isfinite(b), "the S-STE beta of tensor '%s' is not finite (%g): its weights hold NaN or inf",
                t.name.c_str(), b);
    *beta = b;
  });
}

int sieve_model_set_mvue(sieve_model* model, int64_t tensor, int32_t on, uint64_t seed) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_index(m, tensor);
    SIEVE_CHECK(on == 0 || on == 1, "on must be 0 or 1, got %d", (int)on);
    TensorEntry& t = m.layout.tensors[tensor];
    SIEVE_CHECK(t.kind == SIEVE_KIND_LINEAR,
                "tensor '%s' is not a linear weight: only linear weights take MVUE on their gradient", t.name.c_str());
    BusyGuard busy(&m);
    t.mvue = on == 1;
    t.mvue_seed = on == 1 ? seed : 0;
  });
}

int sieve_model_materialize(sieve_model* model) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    for (int64_t i = 0; i < (int64_t)m.layout.tensors.size(); i++) {
      if (transform_is_identity(m.layout.tensors[i].transform.kind)) continue;
      if (m.cancel.load()) fail(SIEVE_E_CANCELLED, "cancelled");
      m.impl->materialize(i);
      set_seam(m, i, Seam::transform, SIEVE_TRANSFORM_NONE, nullptr, 0);
    }
  });
}

int sieve_model_slorb_init_mean(sieve_model* model, const int64_t* tensors, int64_t n) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_list(m, tensors, n);
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = m.layout.tensors[tensors[i]];
      SIEVE_CHECK(t.slorb_s >= 0,
                  "tensor '%s' has no SLoRB adapters: give the model config slorb_k and an adapter scope that covers it",
                  t.name.c_str());
    }
    BusyGuard busy(&m);
    m.impl->slorb_init_mean(tensors, n);
  });
}

// ---------------------------------------------------------------- inference

int sieve_model_eval_nll(sieve_model* model, float* nll, const int32_t* tokens, int64_t B, int64_t T,
                         sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(nll, "nll");
    check_ptr(tokens, "tokens");
    check_batch(m, B, T, 2);
    check_tokens(tokens, B * T, m.layout.V, "tokens", false);
    BusyGuard busy(&m);
    m.impl->infer(nll, nullptr, tokens, B, T, progress, user);
  });
}

int sieve_model_logits(sieve_model* model, float* logits, const int32_t* tokens, int64_t B, int64_t T,
                       sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_ptr(logits, "logits");
    check_ptr(tokens, "tokens");
    check_batch(m, B, T, 1);
    check_tokens(tokens, B * T, m.layout.V, "tokens", false);
    BusyGuard busy(&m);
    m.impl->infer(nullptr, logits, tokens, B, T, progress, user);
  });
}

// ---------------------------------------------------------------- quantization

int sieve_model_input_hessians(sieve_model* model, double* out, const int64_t* tensors, int64_t n,
                               const int32_t* tokens, int64_t B, int64_t T, sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_list(m, tensors, n);
    SIEVE_CHECK(n >= 1, "n must be at least 1: give the linear weights whose input Hessians you want");
    check_ptr(out, "out");
    check_ptr(tokens, "tokens");
    check_batch(m, B, T, 1);
    check_tokens(tokens, B * T, m.layout.V, "tokens", false);
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = m.layout.tensors[tensors[i]];
      SIEVE_CHECK(t.kind == SIEVE_KIND_LINEAR, "tensor '%s' is not a block linear weight: only those have input Hessians",
                  t.name.c_str());
      SIEVE_CHECK(t.shape[1] <= 32768, "tensor '%s' has %lld inputs: an (IC, IC) Hessian needs IC <= 32768",
                  t.name.c_str(), (long long)t.shape[1]);
    }
    BusyGuard busy(&m);
    m.impl->input_hessians(out, tensors, n, tokens, B, T, progress, user);
  });
}

int sieve_model_post_quant_integral(sieve_model* model, double* pqi, double* losses, const int64_t* tensors, int64_t n,
                                    const float* deltas, const double* points, const double* weights, int64_t K,
                                    const int32_t* inputs, const int32_t* targets, int64_t M, int64_t T,
                                    int64_t micro, sieve_progress_fn progress, void* user) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    check_tensor_list(m, tensors, n);
    SIEVE_CHECK(n >= 1, "n must be at least 1: give the tensors the perturbation moves");
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < i; j++)
        SIEVE_CHECK(tensors[i] != tensors[j], "tensor '%s' is listed twice",
                    m.layout.tensors[tensors[i]].name.c_str());
    check_ptr(pqi, "pqi"), check_ptr(losses, "losses"), check_ptr(deltas, "deltas");
    check_ptr(points, "points"), check_ptr(weights, "weights");
    check_ptr(inputs, "inputs"), check_ptr(targets, "targets");
    SIEVE_CHECK(K >= 1 && K <= 4096, "K (quadrature points) must be in [1, 4096], got %lld", (long long)K);
    for (int64_t k = 0; k < K; k++) {
      SIEVE_CHECK(points[k] >= 0.0 && points[k] <= 1.0, "points[%lld] = %g is outside [0, 1]", (long long)k, points[k]);
      SIEVE_CHECK(std::isfinite(weights[k]), "weights[%lld] is not finite (%g)", (long long)k, weights[k]);
    }
    check_batch(m, M, T, 1);
    SIEVE_CHECK(micro >= 1 && micro <= M, "micro must be in [1, M = %lld], got %lld", (long long)M, (long long)micro);
    check_tokens(inputs, M * T, m.layout.V, "inputs", false);
    check_tokens(targets, M * T, m.layout.V, "targets", true);
    bool any = false;
    for (int64_t i = 0; i < M * T && !any; i++) any = targets[i] >= 0;
    SIEVE_CHECK(any, "every target is -1: the windows have nothing to predict");
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
      const TensorEntry& t = m.layout.tensors[tensors[i]];
      for (int64_t j = 0; j < t.size; j++)
        SIEVE_CHECK(std::isfinite(deltas[off + j]), "deltas of tensor '%s' [%lld] is not finite (%g)", t.name.c_str(),
                    (long long)j, (double)deltas[off + j]);
      off += t.size;
    }
    BusyGuard busy(&m);
    m.impl->post_quant_integral(pqi, losses, tensors, n, deltas, points, weights, K, inputs, targets, M, T, micro,
                                progress, user);
  });
}

// ---------------------------------------------------------------- control and benchmark hooks

int sieve_model_cancel(sieve_model* model) {
  return guarded([&] { model_ref(model).cancel.store(1); });
}

int sieve_model_clear_cancel(sieve_model* model) {
  return guarded([&] { model_ref(model).cancel.store(0); });
}

int sieve_model_timers(const sieve_model* model, sieve_timers* out) {
  return guarded([&] {
    const sieve_model& m = model_ref(model);
    check_ptr(out, "out");
    *out = m.impl->timers();
  });
}

int sieve_model_reset_timers(sieve_model* model) {
  return guarded([&] {
    sieve_model& m = model_ref(model);
    BusyGuard busy(&m);
    m.impl->reset_timers();
  });
}

// ---------------------------------------------------------------- schedules

int sieve_lr_at(double* lr, int64_t step, double peak, double min, int64_t warmup, int64_t total) {
  return guarded([&] {
    check_ptr(lr, "lr");
    SIEVE_CHECK(step >= 0, "step must be >= 0, got %lld", (long long)step);
    SIEVE_CHECK(std::isfinite(peak) && peak >= 0.0, "peak must be a finite number >= 0, got %g", peak);
    SIEVE_CHECK(std::isfinite(min) && min >= 0.0 && min <= peak, "min must be in [0, peak], got %g", min);
    SIEVE_CHECK(warmup >= 0, "warmup must be >= 0, got %lld", (long long)warmup);
    SIEVE_CHECK(total >= warmup, "total (%lld) must be >= warmup (%lld)", (long long)total, (long long)warmup);
    *lr = lr_at(step, peak, min, warmup, total);
  });
}

}  // extern "C"
