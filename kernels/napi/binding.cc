// binding.cc — the N-API binding of the sieve C ABI (node-addon-api).
//
// Only exports, argument checks and AsyncWorkers: no maths. Promises:
//   - No call can crash the process on bad input: every value is type-checked here (the
//     TS wrapper checks them first with friendlier messages), and every C status becomes a
//     JS Error carrying `status` (the SIEVE_E_* number) for kernels/index.ts to map.
//   - Long calls (forward+backward, optimizer step, evaluation, logits, mask updates,
//     materialize, input Hessians, the post-quantization integral, GPTQ, the sgemm bench) run on
//     the libuv pool and return Promises. A model runs one async call at a time;
//     a second is refused with "model is busy". cancel() sets the C cancel flag, cleared
//     when the next call is queued (so a cancel never leaks into a later call).
//   - The model's buffers are reached only by copies (sieve_model_read / _write): read()
//     returns a new Float32Array, write() copies one in. Nothing in JS points into the
//     model's memory, which may live on a device (docs/kernels.md, "Backend-neutrality");
//     dispose() frees it at once.
#include <napi.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sieve.h"

namespace {

// ---------------------------------------------------------------- errors and arguments

Napi::Error status_error(Napi::Env env, int status, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("status", Napi::Number::New(env, status));
  return e;
}

void check(Napi::Env env, int status) {
  if (status != SIEVE_OK) throw status_error(env, status, sieve_last_error());
}

[[noreturn]] void type_error(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

double get_number(const Napi::Value& v, const char* name) {
  if (!v.IsNumber()) type_error(v.Env(), std::string("expected a number for ") + name);
  return v.As<Napi::Number>().DoubleValue();
}

int64_t get_int(const Napi::Value& v, const char* name) {
  const double d = get_number(v, name);
  if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    type_error(v.Env(), std::string("expected an integer for ") + name);
  return (int64_t)d;
}

template <class T, napi_typedarray_type Kind>
Napi::TypedArrayOf<T> get_typed(const Napi::Value& v, const char* name, const char* type_name, int64_t length) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != Kind)
    type_error(v.Env(), std::string("expected ") + type_name + " for " + name);
  auto a = v.As<Napi::TypedArrayOf<T>>();
  if ((int64_t)a.ElementLength() != length)
    type_error(v.Env(), std::string(name) + " has " + std::to_string(a.ElementLength()) + " elements, expected " +
                            std::to_string(length));
  return a;
}

Napi::Int32Array get_i32(const Napi::Value& v, const char* name, int64_t length) {
  return get_typed<int32_t, napi_int32_array>(v, name, "an Int32Array", length);
}
Napi::Float32Array get_f32(const Napi::Value& v, const char* name, int64_t length) {
  return get_typed<float, napi_float32_array>(v, name, "a Float32Array", length);
}
// A Float32Array of any length (the C side checks it against the buffer or the tensor).
Napi::Float32Array get_f32_any(const Napi::Value& v, const char* name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(v.Env(), std::string("expected a Float32Array for ") + name);
  return v.As<Napi::Float32Array>();
}

Napi::Float64Array get_f64(const Napi::Value& v, const char* name, int64_t length) {
  return get_typed<double, napi_float64_array>(v, name, "a Float64Array", length);
}
Napi::Uint8Array get_u8(const Napi::Value& v, const char* name, int64_t length) {
  return get_typed<uint8_t, napi_uint8_array>(v, name, "a Uint8Array", length);
}
// A Float32Array of `length` elements, or null / undefined (returned as nullptr).
const float* get_f32_or_null(const Napi::Value& v, const char* name, int64_t length) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  return get_f32(v, name, length).Data();
}

std::string get_string(const Napi::Value& v, const char* name) {
  if (!v.IsString()) type_error(v.Env(), std::string("expected a string for ") + name);
  return v.As<Napi::String>().Utf8Value();
}

// An array of tensor indices.
std::vector<int64_t> get_indices(const Napi::Value& v, const char* name) {
  if (!v.IsArray()) type_error(v.Env(), std::string("expected an array of tensor indices for ") + name);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out[i] = get_int(a.Get(i), name);
  return out;
}

Napi::Array to_array(Napi::Env env, const std::vector<double>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set((uint32_t)i, Napi::Number::New(env, v[i]));
  return a;
}

std::vector<float> get_params(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(v.Env(), "expected a Float32Array or null for params");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

sieve_config read_config(const Napi::Value& v) {
  if (!v.IsObject()) type_error(v.Env(), "expected a config object");
  Napi::Object o = v.As<Napi::Object>();
  sieve_config c{};
  c.family = (int32_t)get_int(o.Get("family"), "config.family");
  c.layers = get_int(o.Get("layers"), "config.layers");
  c.dim = get_int(o.Get("dim"), "config.dim");
  c.heads = get_int(o.Get("heads"), "config.heads");
  c.context = get_int(o.Get("context"), "config.context");
  c.vocab = get_int(o.Get("vocab"), "config.vocab");
  c.mlp_hidden = get_int(o.Get("mlpHidden"), "config.mlpHidden");
  c.norm_eps = (float)get_number(o.Get("normEps"), "config.normEps");
  c.rope_theta = (float)get_number(o.Get("ropeTheta"), "config.ropeTheta");
  c.adapter_scope = (int32_t)get_int(o.Get("adapterScope"), "config.adapterScope");
  c.slorb_k = get_int(o.Get("slorbK"), "config.slorbK");
  c.scale_segments = get_int(o.Get("scaleSegments"), "config.scaleSegments");
  return c;
}

int64_t checked_product(Napi::Env env, int64_t a, int64_t b, const char* what) {
  if (a < 0 || b < 0 || (b != 0 && a > (int64_t(1) << 40) / b)) type_error(env, std::string(what) + " is too large");
  return a * b;
}

// ---------------------------------------------------------------- the model object

// Owns the native model; shared by the JS object and in-flight workers, so a worker never
// outlives the model it runs on.
struct Holder {
  sieve_model* model = nullptr;
  ~Holder() { sieve_model_destroy(model); }
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeModel",
                       {
                           InstanceMethod<&ModelWrap::Info>("info"),
                           InstanceMethod<&ModelWrap::Device>("device"),
                           InstanceMethod<&ModelWrap::Read>("read"),
                           InstanceMethod<&ModelWrap::Write>("write"),
                           InstanceMethod<&ModelWrap::ReadTensor>("readTensor"),
                           InstanceMethod<&ModelWrap::WriteTensor>("writeTensor"),
                           InstanceMethod<&ModelWrap::Init>("init"),
                           InstanceMethod<&ModelWrap::GetStep>("getStep"),
                           InstanceMethod<&ModelWrap::SetStep>("setStep"),
                           InstanceMethod<&ModelWrap::GetThreads>("getThreads"),
                           InstanceMethod<&ModelWrap::SetThreads>("setThreads"),
                           InstanceMethod<&ModelWrap::SetTransform>("setTransform"),
                           InstanceMethod<&ModelWrap::SetGradHook>("setGradHook"),
                           InstanceMethod<&ModelWrap::SetUpdateRule>("setUpdateRule"),
                           InstanceMethod<&ModelWrap::UpdateMasks>("updateMasks"),
                           InstanceMethod<&ModelWrap::MaskStats>("maskStats"),
                           InstanceMethod<&ModelWrap::Count24>("count24"),
                           InstanceMethod<&ModelWrap::SsteBeta>("ssteBeta"),
                           InstanceMethod<&ModelWrap::SetMvue>("setMvue"),
                           InstanceMethod<&ModelWrap::Materialize>("materialize"),
                           InstanceMethod<&ModelWrap::SlorbInitMean>("slorbInitMean"),
                           InstanceMethod<&ModelWrap::ZeroGrad>("zeroGrad"),
                           InstanceMethod<&ModelWrap::ForwardBackward>("forwardBackward"),
                           InstanceMethod<&ModelWrap::OptimizerStep>("optimizerStep"),
                           InstanceMethod<&ModelWrap::EvalNll>("evalNll"),
                           InstanceMethod<&ModelWrap::Logits>("logits"),
                           InstanceMethod<&ModelWrap::InputHessians>("inputHessians"),
                           InstanceMethod<&ModelWrap::PostQuantIntegral>("postQuantIntegral"),
                           InstanceMethod<&ModelWrap::Timers>("timers"),
                           InstanceMethod<&ModelWrap::ResetTimers>("resetTimers"),
                           InstanceMethod<&ModelWrap::Cancel>("cancel"),
                           InstanceMethod<&ModelWrap::Dispose>("dispose"),
                           InstanceMethod<&ModelWrap::IsBusy>("isBusy"),
                       });
  }

  explicit ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 2) type_error(env, "expected a config object and a device");
    const sieve_config c = read_config(info[0]);
    const int32_t device = (int32_t)get_int(info[1], "device");
    holder_ = std::make_shared<Holder>();
    check(env, sieve_model_create(&holder_->model, &c, device));
    config_ = c;
  }

  // Clears the busy flag when an async call settles (on the JS thread).
  void Settle() { busy_ = false; }
  std::shared_ptr<Holder> holder() const { return holder_; }

 private:
  sieve_model* Model(Napi::Env env) const {
    if (!holder_->model) throw status_error(env, SIEVE_E_STATE, "model has been disposed");
    return holder_->model;
  }
  // For calls that touch state: refused while an async call runs.
  sieve_model* Idle(Napi::Env env) const {
    sieve_model* m = Model(env);
    if (busy_)
      throw status_error(env, SIEVE_E_STATE, "model is busy: await the pending call (or cancel() it) before this one");
    return m;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sieve_model* m = Model(env);
    int64_t n_params = 0, n_tensors = 0;
    check(env, sieve_model_num_params(m, &n_params));
    check(env, sieve_model_num_tensors(m, &n_tensors));
    Napi::Array tensors = Napi::Array::New(env, n_tensors);
    for (int64_t i = 0; i < n_tensors; i++) {
      sieve_tensor_info t{};
      check(env, sieve_model_tensor(m, i, &t));
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", t.name);
      o.Set("offset", (double)t.offset);
      o.Set("size", (double)t.size);
      Napi::Array shape = Napi::Array::New(env, t.ndim);
      for (int32_t d = 0; d < t.ndim; d++) shape.Set(d, (double)t.shape[d]);
      o.Set("shape", shape);
      o.Set("kind", t.kind);
      o.Set("scope", t.scope);
      o.Set("decay", t.decay != 0);
      tensors.Set(i, o);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("numParams", (double)n_params);
    out.Set("tensors", tensors);
    return out;
  }

  Napi::Value Device(const Napi::CallbackInfo& info) {
    int32_t device = 0;
    check(info.Env(), sieve_model_device(Model(info.Env()), &device));
    return Napi::Number::New(info.Env(), device);
  }

  // (which, offset, count) -> a new Float32Array holding a copy of that range.
  Napi::Value Read(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int32_t which = (int32_t)get_int(info[0], "buffer");
    const int64_t offset = get_int(info[1], "offset"), count = get_int(info[2], "count");
    sieve_model* m = Idle(env);
    CheckRange(env, m, offset, count);
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)count);
    check(env, sieve_model_read(m, which, offset, count, out.Data()));
    return out;
  }

  // (which, offset, data: Float32Array): copies data into [offset, offset + data.length).
  Napi::Value Write(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int32_t which = (int32_t)get_int(info[0], "buffer");
    const int64_t offset = get_int(info[1], "offset");
    Napi::Float32Array data = get_f32_any(info[2], "data");
    check(env, sieve_model_write(Idle(env), which, offset, (int64_t)data.ElementLength(), data.Data()));
    return env.Undefined();
  }

  // (name, which) -> a new Float32Array holding a copy of the tensor.
  Napi::Value ReadTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = get_string(info[0], "name");
    const int32_t which = (int32_t)get_int(info[1], "buffer");
    sieve_model* m = Idle(env);
    int64_t index = 0;
    sieve_tensor_info t{};
    check(env, sieve_model_find_tensor(m, name.c_str(), &index));
    check(env, sieve_model_tensor(m, index, &t));
    Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)t.size);
    check(env, sieve_model_read_tensor(m, name.c_str(), which, out.Data(), t.size));
    return out;
  }

  // (name, which, data: Float32Array of the tensor's size)
  Napi::Value WriteTensor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::string name = get_string(info[0], "name");
    const int32_t which = (int32_t)get_int(info[1], "buffer");
    Napi::Float32Array data = get_f32_any(info[2], "data");
    check(env, sieve_model_write_tensor(Idle(env), name.c_str(), which, data.Data(), (int64_t)data.ElementLength()));
    return env.Undefined();
  }

  Napi::Value Init(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t seed = get_int(info[0], "seed");
    if (seed < 0) type_error(env, "seed must be >= 0");
    check(env, sieve_model_init(Idle(env), (uint64_t)seed));
    return env.Undefined();
  }

  Napi::Value GetStep(const Napi::CallbackInfo& info) {
    int64_t step = 0;
    check(info.Env(), sieve_model_get_step(Model(info.Env()), &step));
    return Napi::Number::New(info.Env(), (double)step);
  }

  Napi::Value SetStep(const Napi::CallbackInfo& info) {
    check(info.Env(), sieve_model_set_step(Idle(info.Env()), get_int(info[0], "step")));
    return info.Env().Undefined();
  }

  Napi::Value GetThreads(const Napi::CallbackInfo& info) {
    int32_t threads = 0;
    check(info.Env(), sieve_model_get_threads(Model(info.Env()), &threads));
    return Napi::Number::New(info.Env(), threads);
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    check(info.Env(), sieve_model_set_threads(Idle(info.Env()), (int32_t)get_int(info[0], "threads")));
    return info.Env().Undefined();
  }

  template <int (*Setter)(sieve_model*, int64_t, int32_t, const float*, int64_t)>
  Napi::Value SetSeam(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t tensor = get_int(info[0], "tensor");
    const int32_t kind = (int32_t)get_int(info[1], "kind");
    const std::vector<float> params = get_params(info[2]);
    check(env, Setter(Idle(env), tensor, kind, params.data(), (int64_t)params.size()));
    return env.Undefined();
  }
  Napi::Value SetTransform(const Napi::CallbackInfo& info) { return SetSeam<sieve_model_set_transform>(info); }
  Napi::Value SetGradHook(const Napi::CallbackInfo& info) { return SetSeam<sieve_model_set_grad_hook>(info); }
  Napi::Value SetUpdateRule(const Napi::CallbackInfo& info) { return SetSeam<sieve_model_set_update_rule>(info); }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    check(info.Env(), sieve_model_zero_grad(Idle(info.Env())));
    return info.Env().Undefined();
  }

  // ---- 2:4 sparsity (the O(P) passes over many tensors are async)

  Napi::Value UpdateMasks(const Napi::CallbackInfo& info);  // (tensors, method) -> Promise<number[]>
  Napi::Value Materialize(const Napi::CallbackInfo& info);  // () -> Promise<undefined>

  // (tensors) -> { pruned: number[], total: number[] }
  Napi::Value MaskStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<int64_t> t = get_indices(info[0], "tensors");
    std::vector<double> pruned(t.size()), total(t.size());
    check(env, sieve_model_mask_stats(Idle(env), t.data(), (int64_t)t.size(), pruned.data(), total.data()));
    Napi::Object o = Napi::Object::New(env);
    o.Set("pruned", to_array(env, pruned));
    o.Set("total", to_array(env, total));
    return o;
  }

  // (tensors, bothWays: boolean) -> number[]
  Napi::Value Count24(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<int64_t> t = get_indices(info[0], "tensors");
    if (!info[1].IsBoolean()) type_error(env, "expected a boolean for bothWays");
    std::vector<int64_t> out(t.size());
    check(env, sieve_model_count24(Idle(env), t.data(), (int64_t)t.size(), info[1].As<Napi::Boolean>().Value() ? 1 : 0,
                                   out.data()));
    return to_array(env, std::vector<double>(out.begin(), out.end()));
  }

  // (tensor) -> beta
  Napi::Value SsteBeta(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double beta = 0;
    check(env, sieve_model_sste_beta(Idle(env), get_int(info[0], "tensor"), &beta));
    return Napi::Number::New(env, beta);
  }

  // (tensor, on: boolean, seed)
  Napi::Value SetMvue(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t tensor = get_int(info[0], "tensor");
    if (!info[1].IsBoolean()) type_error(env, "expected a boolean for on");
    const int64_t seed = get_int(info[2], "seed");
    if (seed < 0) type_error(env, "seed must be >= 0");
    check(env, sieve_model_set_mvue(Idle(env), tensor, info[1].As<Napi::Boolean>().Value() ? 1 : 0, (uint64_t)seed));
    return env.Undefined();
  }

  // (tensors)
  Napi::Value SlorbInitMean(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const std::vector<int64_t> t = get_indices(info[0], "tensors");
    check(env, sieve_model_slorb_init_mean(Idle(env), t.data(), (int64_t)t.size()));
    return env.Undefined();
  }

  Napi::Value ForwardBackward(const Napi::CallbackInfo& info);
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info);
  Napi::Value EvalNll(const Napi::CallbackInfo& info) { return Infer(info, true); }
  Napi::Value Logits(const Napi::CallbackInfo& info) { return Infer(info, false); }
  Napi::Value Infer(const Napi::CallbackInfo& info, bool nll);
  Napi::Value InputHessians(const Napi::CallbackInfo& info);      // -> Promise<Float64Array>
  Napi::Value PostQuantIntegral(const Napi::CallbackInfo& info);  // -> Promise<{ pqi, losses }>

  Napi::Value Timers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sieve_timers t{};
    check(env, sieve_model_timers(Model(env), &t));
    Napi::Object o = Napi::Object::New(env);
    o.Set("totalSeconds", t.total_seconds);
    o.Set("gemmSeconds", t.gemm_seconds);
    o.Set("gemmFlops", t.gemm_flops);
    o.Set("sparseGemmFlops", t.sparse_gemm_flops);
    o.Set("attentionSeconds", t.attention_seconds);
    o.Set("optimizerSeconds", t.optimizer_seconds);
    o.Set("tokens", (double)t.tokens);
    return o;
  }

  Napi::Value ResetTimers(const Napi::CallbackInfo& info) {
    check(info.Env(), sieve_model_reset_timers(Idle(info.Env())));
    return info.Env().Undefined();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    if (holder_->model) check(info.Env(), sieve_model_cancel(holder_->model));
    return info.Env().Undefined();
  }

  Napi::Value IsBusy(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), busy_); }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!holder_->model) return env.Undefined();  // disposing twice is harmless
    Idle(env);
    sieve_model_destroy(holder_->model);
    holder_->model = nullptr;
    return env.Undefined();
  }

  // Marks the model busy and clears a stale cancel request; returns the model.
  sieve_model* BeginAsync(Napi::Env env) {
    sieve_model* m = Idle(env);
    check(env, sieve_model_clear_cancel(m));
    busy_ = true;
    return m;
  }

  // The same bounds as the C side, checked before an output buffer is allocated for them.
  void CheckBatch(Napi::Env env, int64_t B, int64_t T, int64_t min_T) const {
    auto fail = [&](const std::string& m) { throw status_error(env, SIEVE_E_INVALID_ARGUMENT, m); };
    if (B < 1) fail("B must be at least 1, got " + std::to_string(B));
    if (T < min_T) fail("T must be at least " + std::to_string(min_T) + ", got " + std::to_string(T));
    if (T > config_.context)
      fail("T = " + std::to_string(T) + " exceeds the model's context (" + std::to_string(config_.context) + ")");
    if (B > (int64_t(1) << 24) / T) fail("B*T = " + std::to_string(B * T) + " tokens is too many for one call");
  }

  // The range checks of sieve_model_read, made before an output array is allocated for them.
  void CheckRange(Napi::Env env, sieve_model* m, int64_t offset, int64_t count) const {
    auto fail = [&](const std::string& msg) { throw status_error(env, SIEVE_E_INVALID_ARGUMENT, msg); };
    int64_t P = 0;
    check(env, sieve_model_num_params(m, &P));
    if (offset < 0) fail("offset must be >= 0, got " + std::to_string(offset));
    if (count < 0) fail("count must be >= 0, got " + std::to_string(count));
    if (offset > P || count > P - offset)
      fail("[" + std::to_string(offset) + ", " + std::to_string(offset) + " + " + std::to_string(count) +
           ") is outside the buffer of P = " + std::to_string(P) + " floats");
  }

  // A tensor's entry (the C side's range check and message).
  sieve_tensor_info TensorInfo(Napi::Env env, int64_t index) const {
    sieve_tensor_info t{};
    check(env, sieve_model_tensor(Model(env), index, &t));
    return t;
  }

  std::shared_ptr<Holder> holder_;
  sieve_config config_{};
  bool busy_ = false;
};

// ---------------------------------------------------------------- async calls

// The settle half shared by every worker: resolves or rejects the promise, clears the
// model's busy flag, and keeps the JS model object alive while the call runs.
class Completion {
 public:
  Completion(Napi::Env env, ModelWrap* wrap)
      : deferred_(Napi::Promise::Deferred::New(env)), wrap_(wrap), holder_(wrap ? wrap->holder() : nullptr) {
    if (wrap) self_ = Napi::Persistent(wrap->Value());
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }
  sieve_model* model() const { return holder_->model; }
  void Resolve(Napi::Value v) {
    Release();
    deferred_.Resolve(v);
  }
  void Reject(Napi::Env env, int status, const std::string& message) {
    Release();
    deferred_.Reject(status_error(env, status, message).Value());
  }
  void Reject(Napi::Value error) {
    Release();
    deferred_.Reject(error);
  }

 private:
  void Release() {
    if (wrap_) wrap_->Settle();
    if (!self_.IsEmpty()) self_.Reset();
  }
  Napi::Promise::Deferred deferred_;
  ModelWrap* wrap_;
  std::shared_ptr<Holder> holder_;
  Napi::ObjectReference self_;
};

class ForwardBackwardWorker : public Napi::AsyncWorker {
 public:
  ForwardBackwardWorker(Napi::Env env, ModelWrap* wrap) : Napi::AsyncWorker(env), done_(env, wrap) {}
  std::vector<int32_t> inputs, targets;
  Napi::Reference<Napi::Float32Array> teacher;
  const float* teacher_data = nullptr;
  sieve_loss_opts opts{};
  int64_t B = 0, T = 0;
  Napi::Promise Promise() const { return done_.Promise(); }

 protected:
  void Execute() override {
    status_ = sieve_model_forward_backward(done_.model(), &out_, inputs.data(), targets.data(), teacher_data, &opts, B,
                                           T);
    if (status_ != SIEVE_OK) SetError(sieve_last_error());
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", out_.loss);
    o.Set("ce", out_.ce);
    o.Set("kl", out_.kl);
    o.Set("tokens", (double)out_.tokens);
    teacher.Reset();
    done_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    teacher.Reset();
    done_.Reject(Env(), status_, e.Message());
  }

 private:
  Completion done_;
  sieve_loss out_{};
  int status_ = SIEVE_OK;
};

Napi::Value ModelWrap::ForwardBackward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // (inputs, targets, teacher | null, lossScale, kdAlpha, kdTau, B, T)
  const int64_t B = get_int(info[6], "B"), T = get_int(info[7], "T");
  Model(env);
  CheckBatch(env, B, T, 1);
  const int64_t n = B * T;
  auto inputs = get_i32(info[0], "inputs", n);
  auto targets = get_i32(info[1], "targets", n);
  const float loss_scale = (float)get_number(info[3], "lossScale");
  const float alpha = (float)get_number(info[4], "kdAlpha");
  const float tau = (float)get_number(info[5], "kdTau");
  Napi::Float32Array teacher;
  if (!info[2].IsNull() && !info[2].IsUndefined())
    teacher = get_f32(info[2], "teacherLogits", checked_product(env, n, config_.vocab, "B*T*V"));
  BeginAsync(env);
  auto* w = new ForwardBackwardWorker(env, this);
  w->inputs.assign(inputs.Data(), inputs.Data() + n);
  w->targets.assign(targets.Data(), targets.Data() + n);
  if (!teacher.IsEmpty()) {
    w->teacher = Napi::Persistent(teacher);
    w->teacher_data = teacher.Data();
  }
  w->opts = sieve_loss_opts{loss_scale, alpha, tau};
  w->B = B;
  w->T = T;
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

class OptimizerWorker : public Napi::AsyncWorker {
 public:
  OptimizerWorker(Napi::Env env, ModelWrap* wrap, sieve_optim_opts opts)
      : Napi::AsyncWorker(env), done_(env, wrap), opts_(opts) {}
  Napi::Promise Promise() const { return done_.Promise(); }

 protected:
  void Execute() override {
    status_ = sieve_model_optimizer_step(done_.model(), &norm_, &opts_);
    if (status_ != SIEVE_OK) SetError(sieve_last_error());
  }
  void OnOK() override { done_.Resolve(Napi::Number::New(Env(), norm_)); }
  void OnError(const Napi::Error& e) override { done_.Reject(Env(), status_, e.Message()); }

 private:
  Completion done_;
  sieve_optim_opts opts_;
  float norm_ = 0;
  int status_ = SIEVE_OK;
};

Napi::Value ModelWrap::OptimizerStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // (lr, beta1, beta2, eps, weightDecay, gradClip, skipNonFinite)
  sieve_optim_opts o{};
  o.lr = (float)get_number(info[0], "lr");
  o.beta1 = (float)get_number(info[1], "beta1");
  o.beta2 = (float)get_number(info[2], "beta2");
  o.eps = (float)get_number(info[3], "eps");
  o.weight_decay = (float)get_number(info[4], "weightDecay");
  o.grad_clip = (float)get_number(info[5], "gradClip");
  if (!info[6].IsBoolean()) type_error(env, "expected a boolean for skipNonFinite");
  o.skip_nonfinite = info[6].As<Napi::Boolean>().Value() ? 1 : 0;
  BeginAsync(env);
  auto* w = new OptimizerWorker(env, this, o);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// A model call with nothing to copy in or out but small vectors: `run` on the libuv pool
// (the status it returns), then `result` on the JS thread.
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, ModelWrap* wrap, std::function<int(sieve_model*)> run,
             std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env), done_(env, wrap), run_(std::move(run)), result_(std::move(result)) {}
  Napi::Promise Promise() const { return done_.Promise(); }

 protected:
  void Execute() override {
    status_ = run_(done_.model());
    if (status_ != SIEVE_OK) SetError(sieve_last_error());
  }
  void OnOK() override { done_.Resolve(result_(Env())); }
  void OnError(const Napi::Error& e) override { done_.Reject(Env(), status_, e.Message()); }

 private:
  Completion done_;
  std::function<int(sieve_model*)> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  int status_ = SIEVE_OK;
};

Napi::Value ModelWrap::UpdateMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto tensors = std::make_shared<std::vector<int64_t>>(get_indices(info[0], "tensors"));
  const int32_t method = (int32_t)get_int(info[1], "method");
  auto flips = std::make_shared<std::vector<int64_t>>(tensors->size(), 0);
  BeginAsync(env);
  auto* w = new TaskWorker(
      env, this,
      [tensors, flips, method](sieve_model* m) {
        return sieve_model_update_masks(m, method, tensors->data(), (int64_t)tensors->size(), flips->data());
      },
      [flips](Napi::Env e) -> Napi::Value { return to_array(e, std::vector<double>(flips->begin(), flips->end())); });
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelWrap::Materialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BeginAsync(env);
  auto* w = new TaskWorker(
      env, this, [](sieve_model* m) { return sieve_model_materialize(m); },
      [](Napi::Env e) -> Napi::Value { return e.Undefined(); });
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

struct Progress {
  int64_t done, total;
};

// A long model call that reports progress: `run` on the libuv pool with the C progress
// callback (null without onProgress), then `result` on the JS thread (without one, the
// promise resolves to `keep`: a JS output array held alive while native code writes into it).
class ProgressWorker : public Napi::AsyncProgressWorker<Progress> {
 public:
  using Run = std::function<int(sieve_model*, sieve_progress_fn, void*)>;
  using Result = std::function<Napi::Value(Napi::Env)>;
  ProgressWorker(Napi::Env env, ModelWrap* wrap, Run run, Result result)
      : Napi::AsyncProgressWorker<Progress>(env), done_(env, wrap), run_(std::move(run)), result_(std::move(result)) {}
  Napi::ObjectReference keep;
  Napi::FunctionReference on_progress;
  Napi::Promise Promise() const { return done_.Promise(); }

 protected:
  static void Report(void* user, int64_t done, int64_t total) {
    Progress p{done, total};
    static_cast<const ExecutionProgress*>(user)->Send(&p, 1);
  }
  void Execute(const ExecutionProgress& progress) override {
    void* user = const_cast<ExecutionProgress*>(&progress);
    status_ = run_(done_.model(), on_progress.IsEmpty() ? nullptr : &ProgressWorker::Report, user);
    if (status_ != SIEVE_OK) SetError(sieve_last_error());
  }
  void OnProgress(const Progress* data, size_t count) override {
    if (count == 0 || on_progress.IsEmpty() || !callback_error_.IsEmpty()) return;
    Napi::Env env = Env();
    try {
      on_progress.Call({Napi::Number::New(env, (double)data[count - 1].done),
                        Napi::Number::New(env, (double)data[count - 1].total)});
    } catch (const Napi::Error& e) {
      // a throwing progress callback stops the call; the promise rejects with its error
      callback_error_ = Napi::Persistent(e.Value());
      if (done_.model()) sieve_model_cancel(done_.model());
    }
  }
  void OnOK() override {
    if (!callback_error_.IsEmpty()) return Fail();
    Napi::Value result = result_ ? result_(Env()) : keep.Value();
    Release();
    done_.Resolve(result);
  }
  void OnError(const Napi::Error& e) override {
    if (!callback_error_.IsEmpty()) return Fail();
    Release();
    done_.Reject(Env(), status_, e.Message());
  }

 private:
  void Release() {
    keep.Reset();
    on_progress.Reset();
  }
  void Fail() {
    Napi::Value err = callback_error_.Value();
    callback_error_.Reset();
    Release();
    done_.Reject(err);
  }
  Completion done_;
  Run run_;
  Result result_;
  int status_ = SIEVE_OK;
  Napi::ObjectReference callback_error_;
};

// An optional progress callback argument: a function, or null / undefined.
Napi::Function get_progress(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return Napi::Function();
  if (!v.IsFunction()) type_error(v.Env(), "expected a function or null for onProgress");
  return v.As<Napi::Function>();
}

Napi::Promise Queue(ProgressWorker* w, Napi::Function fn) {
  if (!fn.IsEmpty()) w->on_progress = Napi::Persistent(fn);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ModelWrap::Infer(const Napi::CallbackInfo& info, bool nll) {
  Napi::Env env = info.Env();
  // (tokens, B, T, onProgress | null)
  const int64_t B = get_int(info[1], "B"), T = get_int(info[2], "T");
  Model(env);
  CheckBatch(env, B, T, nll ? 2 : 1);
  const int64_t n = B * T;
  auto tokens = get_i32(info[0], "tokens", n);
  Napi::Function fn = get_progress(info[3]);
  const int64_t out_len = nll ? B * (T - 1) : checked_product(env, n, config_.vocab, "B*T*V");
  Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)out_len);
  auto tok = std::make_shared<std::vector<int32_t>>(tokens.Data(), tokens.Data() + n);
  float* out_data = out.Data();
  BeginAsync(env);
  auto* w = new ProgressWorker(
      env, this,
      [tok, out_data, B, T, nll](sieve_model* m, sieve_progress_fn fn, void* user) {
        return nll ? sieve_model_eval_nll(m, out_data, tok->data(), B, T, fn, user)
                   : sieve_model_logits(m, out_data, tok->data(), B, T, fn, user);
      },
      nullptr);
  w->keep = Napi::Persistent(out.As<Napi::Object>());
  return Queue(w, fn);
}

Napi::Value ModelWrap::InputHessians(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // (tensors, tokens, B, T, onProgress | null)
  auto tensors = std::make_shared<std::vector<int64_t>>(get_indices(info[0], "tensors"));
  const int64_t B = get_int(info[2], "B"), T = get_int(info[3], "T");
  CheckBatch(env, B, T, 1);
  auto tokens = get_i32(info[1], "tokens", B * T);
  Napi::Function fn = get_progress(info[4]);
  int64_t total = 0;
  for (int64_t t : *tensors) {
    const int64_t ic = TensorInfo(env, t).shape[1];
    if (ic > 32768) throw status_error(env, SIEVE_E_INVALID_ARGUMENT, "an (IC, IC) Hessian needs IC <= 32768");
    total += ic * ic;
  }
  Napi::Float64Array out = Napi::Float64Array::New(env, (size_t)total);
  auto tok = std::make_shared<std::vector<int32_t>>(tokens.Data(), tokens.Data() + B * T);
  double* out_data = out.Data();
  BeginAsync(env);
  auto* w = new ProgressWorker(
      env, this,
      [tensors, tok, out_data, B, T](sieve_model* m, sieve_progress_fn fn, void* user) {
        return sieve_model_input_hessians(m, out_data, tensors->data(), (int64_t)tensors->size(), tok->data(), B, T,
                                          fn, user);
      },
      nullptr);
  w->keep = Napi::Persistent(out.As<Napi::Object>());
  return Queue(w, fn);
}

Napi::Value ModelWrap::PostQuantIntegral(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // (tensors, deltas, points, weights, inputs, targets, M, T, micro, onProgress | null)
  auto tensors = std::make_shared<std::vector<int64_t>>(get_indices(info[0], "tensors"));
  int64_t D = 0;
  for (int64_t t : *tensors) D += TensorInfo(env, t).size;
  auto deltas_js = get_f32_any(info[1], "deltas");
  if ((int64_t)deltas_js.ElementLength() != D)
    type_error(env, "deltas has " + std::to_string(deltas_js.ElementLength()) + " elements, expected " +
                        std::to_string(D) + " (the listed tensors' sizes)");
  if (!info[2].IsTypedArray()) type_error(env, "expected a Float64Array for points");
  const int64_t K = (int64_t)info[2].As<Napi::TypedArray>().ElementLength();
  auto points_js = get_f64(info[2], "points", K);
  auto weights_js = get_f64(info[3], "weights", K);
  const int64_t M = get_int(info[6], "M"), T = get_int(info[7], "T"), micro = get_int(info[8], "micro");
  CheckBatch(env, M, T, 1);
  auto inputs_js = get_i32(info[4], "inputs", M * T);
  auto targets_js = get_i32(info[5], "targets", M * T);
  Napi::Function fn = get_progress(info[9]);
  struct Args {
    std::vector<float> deltas;
    std::vector<double> points, weights, pqi, losses;
    std::vector<int32_t> inputs, targets;
  };
  auto a = std::make_shared<Args>();
  a->deltas.assign(deltas_js.Data(), deltas_js.Data() + D);
  a->points.assign(points_js.Data(), points_js.Data() + K);
  a->weights.assign(weights_js.Data(), weights_js.Data() + K);
  a->inputs.assign(inputs_js.Data(), inputs_js.Data() + M * T);
  a->targets.assign(targets_js.Data(), targets_js.Data() + M * T);
  a->pqi.assign(D, 0.0);
  a->losses.assign(K + 2, 0.0);
  BeginAsync(env);
  auto* w = new ProgressWorker(
      env, this,
      [tensors, a, K, M, T, micro](sieve_model* m, sieve_progress_fn fn, void* user) {
        return sieve_model_post_quant_integral(m, a->pqi.data(), a->losses.data(), tensors->data(),
                                               (int64_t)tensors->size(), a->deltas.data(), a->points.data(),
                                               a->weights.data(), K, a->inputs.data(), a->targets.data(), M, T, micro,
                                               fn, user);
      },
      [a](Napi::Env e) -> Napi::Value {
        Napi::Object o = Napi::Object::New(e);
        Napi::Float64Array pqi = Napi::Float64Array::New(e, a->pqi.size());
        std::copy(a->pqi.begin(), a->pqi.end(), pqi.Data());
        Napi::Float64Array losses = Napi::Float64Array::New(e, a->losses.size());
        std::copy(a->losses.begin(), a->losses.end(), losses.Data());
        o.Set("pqi", pqi);
        o.Set("losses", losses);
        return o;
      });
  return Queue(w, fn);
}

// ---------------------------------------------------------------- module functions

Napi::Value ConfigCheck(const Napi::CallbackInfo& info) {
  const sieve_config c = read_config(info[0]);
  check(info.Env(), sieve_config_check(&c));
  return info.Env().Undefined();
}

// (device) -> the info of that device's backend; status 6 when this build has none.
Napi::Value Backend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  sieve_backend_info b{};
  check(env, sieve_backend((int32_t)get_int(info[0], "device"), &b));
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", b.abi_version);
  o.Set("name", b.name);
  o.Set("blas", b.blas ? Napi::Value(Napi::String::New(env, b.blas)) : env.Null());
  o.Set("threads", b.default_threads);
  return o;
}

Napi::Value SetDefaultThreads(const Napi::CallbackInfo& info) {
  check(info.Env(), sieve_set_default_threads((int32_t)get_int(info[0], "threads")));
  return info.Env().Undefined();
}

Napi::Value LrAt(const Napi::CallbackInfo& info) {
  double lr = 0;
  check(info.Env(), sieve_lr_at(&lr, get_int(info[0], "step"), get_number(info[1], "peak"),
                                get_number(info[2], "min"), get_int(info[3], "warmup"), get_int(info[4], "total")));
  return Napi::Number::New(info.Env(), lr);
}

// ---- weight-only quantization (host arrays, no model)

// rows x cols of a quantized weight, checked before its arrays are allocated.
void check_quant_shape(Napi::Env env, int64_t rows, int64_t cols, int64_t group) {
  auto fail = [&](const std::string& m) { throw status_error(env, SIEVE_E_INVALID_ARGUMENT, m); };
  if (rows < 1 || cols < 1) fail("rows and cols must be >= 1");
  if (rows > (int64_t(1) << 30) / cols) fail("rows*cols is too large (at most 2^30 elements)");
  if (group < 1 || cols % group != 0)
    fail("the group size " + std::to_string(group) + " must divide cols = " + std::to_string(cols));
}

Napi::Object quantized_object(Napi::Env env, const std::vector<uint8_t>& codes, const std::vector<float>& scales,
                              const std::vector<uint8_t>& zeros) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Uint8Array c = Napi::Uint8Array::New(env, codes.size());
  std::copy(codes.begin(), codes.end(), c.Data());
  Napi::Float32Array s = Napi::Float32Array::New(env, scales.size());
  std::copy(scales.begin(), scales.end(), s.Data());
  Napi::Uint8Array z = Napi::Uint8Array::New(env, zeros.size());
  std::copy(zeros.begin(), zeros.end(), z.Data());
  o.Set("codes", c);
  o.Set("scales", s);
  o.Set("zeros", z);
  return o;
}

// (device, w, mask | null, rows, cols, bits, group, symmetric) -> { codes, scales, zeros }
Napi::Value QuantizeRtn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t rows = get_int(info[3], "rows"), cols = get_int(info[4], "cols"), group = get_int(info[6], "group");
  check_quant_shape(env, rows, cols, group);
  const int32_t device = (int32_t)get_int(info[0], "device");
  const float* w = get_f32(info[1], "w", rows * cols).Data();
  const float* mask = get_f32_or_null(info[2], "mask", rows * cols);
  const int32_t bits = (int32_t)get_int(info[5], "bits");
  if (!info[7].IsBoolean()) type_error(env, "expected a boolean for symmetric");
  const int32_t sym = info[7].As<Napi::Boolean>().Value() ? 1 : 0;
  std::vector<uint8_t> codes(rows * cols), zeros(rows * (cols / group));
  std::vector<float> scales(rows * (cols / group));
  check(env, sieve_quantize_rtn(device, codes.data(), scales.data(), zeros.data(), w, mask, rows, cols, bits, group,
                                sym));
  return quantized_object(env, codes, scales, zeros);
}

// (device, codes, scales, zeros, rows, cols, bits, group) -> Float32Array
Napi::Value Dequantize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t rows = get_int(info[4], "rows"), cols = get_int(info[5], "cols"), group = get_int(info[7], "group");
  check_quant_shape(env, rows, cols, group);
  const int64_t G = cols / group;
  const int32_t device = (int32_t)get_int(info[0], "device");
  auto codes = get_u8(info[1], "codes", rows * cols);
  auto scales = get_f32(info[2], "scales", rows * G);
  auto zeros = get_u8(info[3], "zeros", rows * G);
  Napi::Float32Array out = Napi::Float32Array::New(env, (size_t)(rows * cols));
  check(env, sieve_dequantize(device, out.Data(), codes.Data(), scales.Data(), zeros.Data(), rows, cols,
                              (int32_t)get_int(info[6], "bits"), group));
  return out;
}

// A call on host arrays that may take a while: `run` on the libuv pool, `result` on the JS thread.
class PoolWorker : public Napi::AsyncWorker {
 public:
  PoolWorker(Napi::Env env, std::function<int()> run, std::function<Napi::Value(Napi::Env)> result)
      : Napi::AsyncWorker(env), done_(env, nullptr), run_(std::move(run)), result_(std::move(result)) {}
  Napi::Promise Promise() const { return done_.Promise(); }

 protected:
  void Execute() override {
    status_ = run_();
    if (status_ != SIEVE_OK) SetError(sieve_last_error());
  }
  void OnOK() override { done_.Resolve(result_(Env())); }
  void OnError(const Napi::Error& e) override { done_.Reject(Env(), status_, e.Message()); }

 private:
  Completion done_;
  std::function<int()> run_;
  std::function<Napi::Value(Napi::Env)> result_;
  int status_ = SIEVE_OK;
};

// (device, w, hessian, mask | null, rows, cols, bits, group, symmetric, damp, actOrder) -> Promise<{ codes, scales, zeros }>
Napi::Value Gptq(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t rows = get_int(info[4], "rows"), cols = get_int(info[5], "cols"), group = get_int(info[7], "group");
  check_quant_shape(env, rows, cols, group);
  if (cols > 32768) throw status_error(env, SIEVE_E_INVALID_ARGUMENT, "GPTQ keeps a (cols, cols) Hessian: cols must be <= 32768");
  struct Args {
    std::vector<float> w, mask, scales;
    std::vector<double> hessian;
    std::vector<uint8_t> codes, zeros;
  };
  auto a = std::make_shared<Args>();
  const int32_t device = (int32_t)get_int(info[0], "device");
  auto w = get_f32(info[1], "w", rows * cols);
  auto h = get_f64(info[2], "hessian", cols * cols);
  const float* mask = get_f32_or_null(info[3], "mask", rows * cols);
  a->w.assign(w.Data(), w.Data() + rows * cols);
  a->hessian.assign(h.Data(), h.Data() + cols * cols);
  if (mask) a->mask.assign(mask, mask + rows * cols);
  a->codes.resize(rows * cols);
  a->scales.resize(rows * (cols / group));
  a->zeros.resize(rows * (cols / group));
  const int32_t bits = (int32_t)get_int(info[6], "bits");
  if (!info[8].IsBoolean()) type_error(env, "expected a boolean for symmetric");
  if (!info[10].IsBoolean()) type_error(env, "expected a boolean for actOrder");
  const int32_t sym = info[8].As<Napi::Boolean>().Value() ? 1 : 0;
  const double damp = get_number(info[9], "damp");
  const int32_t act = info[10].As<Napi::Boolean>().Value() ? 1 : 0;
  auto* worker = new PoolWorker(
      env,
      [a, device, rows, cols, bits, group, sym, damp, act]() {
        return sieve_gptq(device, a->codes.data(), a->scales.data(), a->zeros.data(), a->w.data(), a->hessian.data(),
                          a->mask.empty() ? nullptr : a->mask.data(), rows, cols, bits, group, sym, damp, act);
      },
      [a](Napi::Env e) -> Napi::Value { return quantized_object(e, a->codes, a->scales, a->zeros); });
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value BenchSgemm(const Napi::CallbackInfo& info) {
  // (transA, transB, M, N, K, reps, threads, engine)
  const int32_t ta = (int32_t)get_int(info[0], "transA"), tb = (int32_t)get_int(info[1], "transB");
  const int64_t M = get_int(info[2], "M"), N = get_int(info[3], "N"), K = get_int(info[4], "K");
  const int32_t reps = (int32_t)get_int(info[5], "reps"), threads = (int32_t)get_int(info[6], "threads");
  const int32_t engine = (int32_t)get_int(info[7], "engine");
  auto seconds = std::make_shared<double>(0.0);
  auto* w = new PoolWorker(
      info.Env(), [=]() { return sieve_bench_sgemm(seconds.get(), ta, tb, M, N, K, reps, threads, engine); },
      [seconds](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, *seconds); });
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeModel", ModelWrap::Define(env));
  exports.Set("configCheck", Napi::Function::New<ConfigCheck>(env, "configCheck"));
  exports.Set("backend", Napi::Function::New<Backend>(env, "backend"));
  exports.Set("setDefaultThreads", Napi::Function::New<SetDefaultThreads>(env, "setDefaultThreads"));
  exports.Set("lrAt", Napi::Function::New<LrAt>(env, "lrAt"));
  exports.Set("benchSgemm", Napi::Function::New<BenchSgemm>(env, "benchSgemm"));
  exports.Set("quantizeRtn", Napi::Function::New<QuantizeRtn>(env, "quantizeRtn"));
  exports.Set("dequantize", Napi::Function::New<Dequantize>(env, "dequantize"));
  exports.Set("gptq", Napi::Function::New<Gptq>(env, "gptq"));
  return exports;
}

}  // namespace

NODE_API_MODULE(sieve, InitModule)
