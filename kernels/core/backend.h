// backend.h — the seam between the backend-neutral core (kernels/core/) and a device
// backend (kernels/cpu/ today; kernels/cuda/ is the plan, docs/kernels.md "Adding a backend").
//
// The core owns everything that does not depend on where the numbers live: argument
// checks, the tensor table and its seam settings, initialisation (generated on the host),
// the optimizer step counter, the thread count, and the busy and cancel flags. A backend
// owns the model's numbers on its device (the flat buffers, activations, scratch, per-tensor
// seam state) and the passes over them.
//
// What every backend promises (and the core relies on):
//   - It reads the layout, seam settings, threads and cancel flag from the sieve_model it
//     was created for, and nothing else of the core.
//   - Arguments arrive checked (core/api.cc), and the core's busy guard never lets two
//     members run at once on one model. Failure is a thrown sieve::Error (core/error.h):
//     SIEVE_E_CANCELLED when the cancel flag is seen between steps, SIEVE_E_OUT_OF_MEMORY
//     when its memory is full.
//   - Every pointer it is given is host memory; its own memory never leaves it except
//     through read().
//   - The same inputs give the same bits, run after run and at any thread count; results
//     agree with the CPU backend (the reference) within the tolerance of their dtype.
#pragma once

#include <cstdint>
#include <memory>

#include "core/quant.h"
#include "sieve.h"

namespace sieve {

// The three per-tensor seams of core/seams.h.
enum class Seam { transform, hook, rule };

// One model's memory and passes on one device.
class ModelBackend {
 public:
  virtual ~ModelBackend() = default;

  // Copies floats [offset, offset + count) of the flat buffer `which` (SIEVE_BUFFER_*) to
  // or from the host: the only way numbers cross, so device memory never has to be
  // host-visible. Reading a buffer never written gives its initial value (masks 1,
  // others 0) without allocating it; writing allocates it first.
  virtual void read(int32_t which, int64_t offset, int64_t count, float* dst /* (count) */) = 0;
  virtual void write(int32_t which, int64_t offset, int64_t count, const float* src /* (count) */) = 0;

  // After the core stored a new setting of `seam` on `tensor`: allocate what the kind reads
  // (the masks, a W~ buffer) and derive a transform's per-tensor state from the weights.
  virtual void seam_changed(int64_t tensor, Seam seam) = 0;

  // Gradients to zero (allocating them).
  virtual void zero_grad() = 0;
  // One micro-batch: returns the loss; gradients accumulate (+=) into the grads buffer. A
  // linear weight with MVUE on (TensorEntry::mvue) draws with core/rng.h's mvue_key from the
  // model's step and micro counters (the core counts micro).
  virtual sieve_loss forward_backward(const int32_t* inputs /* (B, T) */, const int32_t* targets /* (B, T) */,
                                      const float* teacher /* (B, T, V) or NULL */, const sieve_loss_opts& opts,
                                      int64_t B, int64_t T) = 0;
  // Clip, hooks, rules at optimizer step t (1-based: the core's counter + 1; the core
  // increments its counter once this returns). Returns the gradient norm before clipping.
  // With opts.skip_nonfinite and a norm that is not finite as a float, it returns that norm
  // having changed nothing (the core then leaves its counter alone too).
  virtual float optimizer_step(const sieve_optim_opts& opts, int64_t t) = 0;
  // The memory-light forward: exactly one of nll / logits is non-NULL. Calls progress (if
  // any) on the calling thread after each chunk of windows.
  virtual void infer(float* nll /* (B, T - 1) or NULL */, float* logits /* (B, T, V) or NULL */,
                     const int32_t* tokens /* (B, T) */, int64_t B, int64_t T, sieve_progress_fn progress,
                     void* user) = 0;

  // ---- 2:4 sparsity on the model's own tensors (tensor lists arrive checked: linear weights
  // with the shapes each call needs, core/api.cc)

  // Recomputes the masks of `tensors` from their parameters (SIEVE_MASK_*), writes them into the
  // masks buffer, and reports the mask entries that changed per tensor. Checks the cancel flag
  // between tensors.
  virtual void update_masks(int32_t method, const int64_t* tensors, int64_t n, int64_t* flips /* (n) */) = 0;
  // Sum of |W| where the mask is 0 and sum of |W|, per tensor, in double, in a fixed order.
  virtual void mask_stats(const int64_t* tensors, int64_t n, double* pruned_abs /* (n) */,
                          double* total_abs /* (n) */) = 0;
  // Groups of 4 with more than 2 nonzero parameters along IC (and along OC when both_ways).
  virtual void count24(const int64_t* tensors, int64_t n, bool both_ways, int64_t* violations /* (n) */) = 0;
  // <W, S(W)> and <S(W), S(W)> of one linear weight (sieve_sste_beta's sums), in double.
  virtual void sste_dots(int64_t tensor, double* ws, double* ss) = 0;
  // X.slorb_s = the mean of the pruned weights of each k-block (sieve_slorb_init_mean).
  virtual void slorb_init_mean(const int64_t* tensors, int64_t n) = 0;
  // Writes the effective weight of the tensor's current transform into its parameters (and
  // resets its scales to 1 for SCALE); the core then sets the transform to NONE.
  virtual void materialize(int64_t tensor) = 0;

  // ---- quantization (tensor lists arrive checked: input_hessians gets linear weights,
  // post_quant_integral distinct tensors, deltas and points finite, K >= 1, 1 <= micro <= M, at
  // least one target >= 0)

  // out[i] (IC, IC) = the sum over all B T positions of x x^T, x the input row of tensors[i]'s
  // layer as infer's forward feeds it (sieve_model_input_hessians). Exactly symmetric, in an
  // order fixed by the sizes; changes nothing in the model. Progress and cancel as infer.
  virtual void input_hessians(double* out, const int64_t* tensors, int64_t n, const int32_t* tokens /* (B, T) */,
                              int64_t B, int64_t T, sieve_progress_fn progress, void* user) = 0;
  // PQI (sieve_model_post_quant_integral): for each point, parameters w + s_k delta, the mean
  // cross-entropy and its gradient over the M windows in micro-batches, pqi += weight_k delta g;
  // losses = [F(w), F(w + delta), F at each point]. The parameters are back to w, bit for bit,
  // when it returns or throws; the grads buffer is scratch. Progress counts windows.
  virtual void post_quant_integral(double* pqi, double* losses, const int64_t* tensors, int64_t n,
                                   const float* deltas, const double* points, const double* weights, int64_t K,
                                   const int32_t* inputs /* (M, T) */, const int32_t* targets /* (M, T) */, int64_t M,
                                   int64_t T, int64_t micro, sieve_progress_fn progress, void* user) = 0;

  // Benchmark hooks (sieve_model_timers): accumulated since creation or the last reset.
  virtual sieve_timers timers() const = 0;
  virtual void reset_timers() = 0;
};

// One device kind: a process-wide object that describes itself and makes models.
class Backend {
 public:
  virtual ~Backend() = default;
  // SIEVE_DEVICE_*, what sieve_model_device reports for its models.
  virtual int32_t device() const = 0;
  // sieve_backend(); default_threads also becomes a new model's thread count.
  virtual void info(sieve_backend_info* out) const = 0;
  // The numbers of a new model: parameters allocated and zero, nothing else yet.
  virtual std::unique_ptr<ModelBackend> create_model(const sieve_model& model) const = 0;

  // ---- weight-only quantization on host arrays (core/quant_api.cc checks the arguments; a
  // device backend copies them in and the results out). Bit for bit the CPU backend's.
  virtual void quantize_rtn(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */,
                            uint8_t* zeros /* (rows, G) */, const float* w /* (rows, cols) */,
                            const float* mask /* (rows, cols) or null */, int64_t rows, int64_t cols,
                            const QuantGrid& grid) const = 0;
  virtual void dequantize(float* out /* (rows, cols) */, const uint8_t* codes /* (rows, cols) */,
                          const float* scales /* (rows, G) */, const uint8_t* zeros /* (rows, G) */, int64_t rows,
                          int64_t cols, int64_t group) const = 0;
  // GPTQ's rows under the host-built plan (core/quant.h); with plan.static_groups, scales and
  // zeros arrive set and are only read.
  virtual void gptq(uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */, uint8_t* zeros /* (rows, G) */,
                    const float* w /* (rows, cols) */, const float* mask /* (rows, cols) or null */,
                    const GptqPlan& plan, int64_t rows, const QuantGrid& grid) const = 0;
};

// The backend of `device`: SIEVE_E_UNAVAILABLE when this build has none for it,
// SIEVE_E_INVALID_ARGUMENT for a number that is no device.
const Backend& backend_for(int32_t device);

}  // namespace sieve
