/*
 * sieve.h — the plain C ABI of sieve's native engine.
 *
 * This header is the seam between the N-API binding (kernels/napi/) and the engine: the
 * backend-neutral core (kernels/core/), which checks every argument and keeps the tensor
 * table, and a device backend behind it (kernels/cpu/ today; CUDA later), chosen once per
 * model by its device. It promises:
 *   - C linkage, POD structs, fixed-width integers; no C++ types cross it.
 *   - Every function that can fail returns an int status (SIEVE_OK = 0). On failure the
 *     calling thread's sieve_last_error() holds one clear sentence. Native code never
 *     exits, aborts or prints.
 *   - Argument order everywhere: outputs first, then inputs, then weights, then sizes
 *     (int64_t). "+=" after a shape means the function accumulates into that buffer.
 *   - All tensors are float32, row-major, contiguous unless a leading dimension says so.
 *     Every pointer is a host pointer, whatever the model's device: a model's own buffers
 *     are reached only through the copy calls sieve_model_read / sieve_model_write.
 *   - Determinism: the same inputs give the same bits, whatever the thread count
 *     (docs/kernels.md says where bits could change: a different BLAS build or CPU).
 *
 * Dimension letters (one legend for every shape comment below, and for the shape
 * comments inside the engine):
 *   B  batch (sequences)              T  sequence length (T <= context)
 *   C  model width ("dim")            NH attention heads
 *   HS head size = C / NH             H  MLP hidden width
 *   FC width of the MLP's up projection: H (gpt2: fc) or 2H (llama: gate | up)
 *   V  vocabulary size                L  layers
 *   N  rows (tokens) of an op; N = B T inside a model call
 *   OC / IC output / input features of a linear layer
 *   P  number of parameters (the length of every flat buffer)
 *   n  length of a flat vector
 */
#ifndef SIEVE_H
#define SIEVE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIEVE_ABI_VERSION 2

/* ---------------------------------------------------------------- status codes */

enum {
  SIEVE_OK = 0,
  SIEVE_E_INVALID_ARGUMENT = 1, /* a bad config, shape, size, token id or option */
  SIEVE_E_STATE = 2,            /* the call is wrong for the object's state (busy, missing buffer) */
  SIEVE_E_CANCELLED = 3,        /* sieve_model_cancel() stopped the call between steps */
  SIEVE_E_OUT_OF_MEMORY = 4,
  SIEVE_E_INTERNAL = 5,         /* a bug: please report with the message */
  SIEVE_E_UNAVAILABLE = 6       /* the requested backend is not built or not loadable here */
};

/* The last error message of the calling thread ("" if none). Valid until the next
 * failing sieve call on the same thread. */
const char* sieve_last_error(void);

/* ---------------------------------------------------------------- backends */

/* Where a model's numbers live and its passes run; chosen once, at sieve_model_create. */
enum { SIEVE_DEVICE_CPU = 0, SIEVE_DEVICE_CUDA = 1 };

typedef struct sieve_backend_info {
  int32_t abi_version;    /* SIEVE_ABI_VERSION */
  const char* name;       /* "cpu" */
  const char* blas;       /* e.g. "OpenBLAS 0.3.21 ... SkylakeX", NULL: portable GEMM or not applicable */
  int32_t default_threads;/* threads a new model gets (cpu: OMP_NUM_THREADS or the core count) */
} sieve_backend_info;

/* The backend of `device`; SIEVE_E_UNAVAILABLE when this build has none for it. */
int sieve_backend(int32_t device, sieve_backend_info* out);

/* Threads used by the op-level functions below and by CPU models created afterwards. */
int sieve_set_default_threads(int32_t threads);

/* ---------------------------------------------------------------- config */

enum { SIEVE_FAMILY_GPT2 = 0, SIEVE_FAMILY_LLAMA = 1 };

typedef struct sieve_config {
  int32_t family;     /* SIEVE_FAMILY_* */
  int64_t layers;     /* L >= 1 */
  int64_t dim;        /* C, divisible by heads */
  int64_t heads;      /* NH */
  int64_t context;    /* maximum T >= 1 */
  int64_t vocab;      /* V >= 2 */
  int64_t mlp_hidden; /* H >= 1 */
  float norm_eps;     /* > 0 */
  float rope_theta;   /* llama: > 0 (HS must be even); gpt2: must be 0 (unused) */
} sieve_config;

/* SIEVE_OK if the config describes a model the engine can build; otherwise
 * SIEVE_E_INVALID_ARGUMENT and the reason in sieve_last_error(). */
int sieve_config_check(const sieve_config* config);

/* ---------------------------------------------------------------- model */

typedef struct sieve_model sieve_model; /* opaque */

enum { SIEVE_KIND_EMBEDDING = 0, SIEVE_KIND_LINEAR = 1, SIEVE_KIND_NORM = 2, SIEVE_KIND_BIAS = 3, SIEVE_KIND_HEAD = 4 };
enum { SIEVE_SCOPE_NONE = 0, SIEVE_SCOPE_ATTN = 1, SIEVE_SCOPE_FFN = 2 };

typedef struct sieve_tensor_info {
  const char* name;  /* docs/architecture.md naming; owned by the model */
  int64_t offset;    /* in floats, into every flat buffer (params, grads, masks, m, v) */
  int64_t size;      /* number of floats */
  int32_t ndim;      /* 1 or 2 */
  int64_t shape[2];  /* [out, in] for matrices (nn.Linear layout); shape[1] = 0 if ndim = 1 */
  int32_t kind;      /* SIEVE_KIND_* */
  int32_t scope;     /* SIEVE_SCOPE_* (only linear weights inside blocks have a scope) */
  int32_t decay;     /* 1: weight decay applies (2-D matrices: linear, embedding, head) */
} sieve_tensor_info;

/* The flat buffers of a model; all have the same layout (sieve_tensor_info.offset). */
enum {
  SIEVE_BUFFER_PARAMS = 0,
  SIEVE_BUFFER_GRADS = 1, /* allocated on first use, zeros */
  SIEVE_BUFFER_MASKS = 2, /* allocated on first use, ones (1 = kept) */
  SIEVE_BUFFER_ADAM_M = 3,/* AdamW first moment, allocated on first use, zeros */
  SIEVE_BUFFER_ADAM_V = 4 /* AdamW second moment, allocated on first use, zeros */
};

/* Creates a model with uninitialised (zero) parameters on `device` (SIEVE_DEVICE_*;
 * SIEVE_E_UNAVAILABLE when this build has no backend for it). Only the parameters are
 * allocated; gradients, optimizer state, masks and activations come on first use, so a
 * frozen teacher that only runs sieve_model_logits never allocates them. */
int sieve_model_create(sieve_model** out, const sieve_config* config, int32_t device);
void sieve_model_destroy(sieve_model* model); /* NULL is fine */
int sieve_model_device(const sieve_model* model, int32_t* out); /* SIEVE_DEVICE_* */

int sieve_model_num_params(const sieve_model* model, int64_t* out);
int sieve_model_num_tensors(const sieve_model* model, int64_t* out);
int sieve_model_tensor(const sieve_model* model, int64_t index, sieve_tensor_info* out);
/* index of the tensor called name, or SIEVE_E_INVALID_ARGUMENT naming it */
int sieve_model_find_tensor(const sieve_model* model, const char* name, int64_t* index);

/* Copies floats [offset, offset + count) of the flat buffer `which` (SIEVE_BUFFER_*) out
 * of or into the model; 0 <= offset, 0 <= count, offset + count <= P. Reading a buffer
 * never written gives its initial value (0; masks 1) without allocating it; writing
 * allocates it. A write is seen by the next call that reads the buffer. */
int sieve_model_read(sieve_model* model, int32_t which, int64_t offset, int64_t count, float* dst /* (count) */);
int sieve_model_write(sieve_model* model, int32_t which, int64_t offset, int64_t count,
                      const float* src /* (count) */);
/* The same for the tensor called name; count must be its size. */
int sieve_model_read_tensor(sieve_model* model, const char* name, int32_t which, float* dst /* (count) */,
                            int64_t count);
int sieve_model_write_tensor(sieve_model* model, const char* name, int32_t which, const float* src /* (count) */,
                             int64_t count);

/* Threads for this model's calls (each call applies it to the calling thread). */
int sieve_model_set_threads(sieve_model* model, int32_t threads);
int sieve_model_get_threads(const sieve_model* model, int32_t* out);

/* GPT-2 style initialisation from seed (docs/kernels.md, "Initialisation"): linear
 * weights, embeddings and head ~ N(0, 0.02), the residual output projections
 * (attn.out, mlp.proj / mlp.down) ~ N(0, 0.02 / sqrt(2 L)), biases 0, norm weights 1.
 * RNG: SplitMix64 seeded per tensor with seed and the tensor's name, Box-Muller in double. */
int sieve_model_init(sieve_model* model, uint64_t seed);

/* Optimizer step counter: the number of optimizer steps taken (bias correction uses
 * step + 1 on the next step). Settable so a checkpoint can restore it. */
int sieve_model_get_step(const sieve_model* model, int64_t* out);
int sieve_model_set_step(sieve_model* model, int64_t step);

/* ---- seams for the 2:4 methods (per tensor; see docs/kernels.md, "Seams") */

/* Weight transform W~ = f(W) used by the forward of a linear weight; the gradient
 * reaches dense W straight through (dW += dW~) for the STE kinds. Only SIEVE_KIND_LINEAR
 * tensors take a transform. params: kind-specific numbers (n_params of them). */
enum { SIEVE_TRANSFORM_NONE = 0, SIEVE_TRANSFORM_MASK = 1 /* W~ = M (.) W; no params */ };
int sieve_model_set_transform(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* Gradient hook, applied after clipping and before the update rule. */
enum { SIEVE_HOOK_NONE = 0, SIEVE_HOOK_MASKED_DECAY = 1 /* g += lambda (1 - M) (.) W; params: [lambda] */ };
int sieve_model_set_grad_hook(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* Update rule (parameter group) of a tensor. */
enum { SIEVE_RULE_ADAMW = 0 /* no params */, SIEVE_RULE_FROZEN = 1 /* not updated; no params */ };
int sieve_model_set_update_rule(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* ---- training */

int sieve_model_zero_grad(sieve_model* model);

typedef struct sieve_loss_opts {
  float loss_scale; /* the gradient is of loss_scale * loss (e.g. 1 / micro-batches) */
  float kd_alpha;   /* with teacher logits: loss = alpha tau^2 KL(p_t || p_s) + (1 - alpha) CE */
  float kd_tau;     /* temperature > 0 (ignored without teacher logits) */
} sieve_loss_opts;

typedef struct sieve_loss {
  double loss;    /* the mixed loss, mean over predicted tokens (not scaled by loss_scale) */
  double ce;      /* cross-entropy, mean over predicted tokens */
  double kl;      /* KL(teacher || student) at temperature tau, mean; 0 without a teacher */
  int64_t tokens; /* predicted tokens (targets >= 0) */
} sieve_loss;

/* Forward and backward of one micro-batch. Gradients accumulate (+=) into the grads
 * buffer until sieve_model_zero_grad. targets[b, t] = -1 ignores that position.
 * Checks the cancel flag between layers; after SIEVE_E_CANCELLED the grads are partial. */
int sieve_model_forward_backward(sieve_model* model, sieve_loss* out,
                                 const int32_t* inputs,         /* (B, T) token ids < V */
                                 const int32_t* targets,        /* (B, T) ids < V, or -1 */
                                 const float* teacher_logits,   /* (B, T, V) or NULL */
                                 const sieve_loss_opts* opts, int64_t B, int64_t T);

typedef struct sieve_optim_opts {
  float lr, beta1, beta2, eps;
  float weight_decay; /* decoupled, on tensors with decay = 1 only */
  float grad_clip;    /* global-norm clip; <= 0: no clipping */
} sieve_optim_opts;

/* One optimizer step: global gradient norm (reported before clipping) -> clip -> each
 * tensor's gradient hook -> each tensor's update rule; then step += 1. The grads
 * buffer is left holding the clipped, hooked gradient. */
int sieve_model_optimizer_step(sieve_model* model, float* grad_norm, const sieve_optim_opts* opts);

/* ---- inference (memory-light: no grads, no stored activations) */

/* Progress callback: called on the calling thread after each chunk of windows. */
typedef void (*sieve_progress_fn)(void* user, int64_t done, int64_t total);

/* Next-token NLL of every predicted position of B windows of T tokens: nll[b, t] is
 * -log p(tokens[b, t + 1] | tokens[b, 0..t]). Checks the cancel flag between chunks. */
int sieve_model_eval_nll(sieve_model* model, float* nll /* (B, T - 1) */,
                         const int32_t* tokens /* (B, T) */, int64_t B, int64_t T,
                         sieve_progress_fn progress, void* user);

int sieve_model_logits(sieve_model* model, float* logits /* (B, T, V) */,
                       const int32_t* tokens /* (B, T) */, int64_t B, int64_t T,
                       sieve_progress_fn progress, void* user);

/* Cancellation: sets a flag the running call checks between steps (thread-safe; the
 * only function that may be called while another call on the model runs). */
int sieve_model_cancel(sieve_model* model);
int sieve_model_clear_cancel(sieve_model* model);

/* ---- benchmark hooks */

typedef struct sieve_timers {
  double total_seconds;     /* inside sieve_model_forward_backward */
  double gemm_seconds;      /* linear-layer and LM-head GEMMs within it */
  double gemm_flops;        /* their floating-point operations (2 M N K each) */
  double attention_seconds; /* attention forward + backward (their GEMMs included) */
  double optimizer_seconds; /* inside sieve_model_optimizer_step */
  int64_t tokens;           /* tokens processed by forward_backward */
} sieve_timers;

int sieve_model_timers(const sieve_model* model, sieve_timers* out);
int sieve_model_reset_timers(sieve_model* model);

/* Mean seconds of one C (M, N) = op(A) op(B) on random data, after one warm-up call.
 * engine = 0: the BLAS library's own sgemm with its own threading at `threads`
 * (the reference of the benchmark); engine = 1: the engine's deterministic split
 * (what the training step runs). Not to be called while a model call runs. */
int sieve_bench_sgemm(double* seconds, int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K,
                      int32_t reps, int32_t threads, int32_t engine);

/* ---------------------------------------------------------------- schedules */

/* Warm-up + cosine: step < warmup: peak (step + 1) / warmup; step >= total: min;
 * otherwise min + (peak - min) (1 + cos(pi (step - warmup) / (total - warmup))) / 2. */
int sieve_lr_at(double* lr, int64_t step, double peak, double min, int64_t warmup, int64_t total);

/* ---------------------------------------------------------------- op-level kernels
 * The building blocks of the model, exposed for tests and for stages that need one op.
 * They run with the default thread count. */

/* out = inp weight^T (+ bias) */
int sieve_matmul_forward(float* out /* (N, OC) */, const float* inp /* (N, IC) */,
                         const float* weight /* (OC, IC) */, const float* bias /* (OC) or NULL */,
                         int64_t N, int64_t IC, int64_t OC);
int sieve_matmul_backward(float* dinp /* (N, IC) or NULL */, float* dweight /* (OC, IC) += */,
                          float* dbias /* (OC) += or NULL */, const float* dout /* (N, OC) */,
                          const float* inp /* (N, IC) */, const float* weight /* (OC, IC) */,
                          int64_t N, int64_t IC, int64_t OC);

int sieve_layernorm_forward(float* out /* (N, C) */, float* mean /* (N) */, float* rstd /* (N) */,
                            const float* inp /* (N, C) */, const float* weight /* (C) */,
                            const float* bias /* (C) */, float eps, int64_t N, int64_t C);
int sieve_layernorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */,
                             float* dbias /* (C) += */, const float* dout /* (N, C) */,
                             const float* inp /* (N, C) */, const float* mean /* (N) */,
                             const float* rstd /* (N) */, const float* weight /* (C) */,
                             int64_t N, int64_t C);

int sieve_rmsnorm_forward(float* out /* (N, C) */, float* rstd /* (N) */, const float* inp /* (N, C) */,
                          const float* weight /* (C) */, float eps, int64_t N, int64_t C);
int sieve_rmsnorm_backward(float* dinp /* (N, C) += */, float* dweight /* (C) += */,
                           const float* dout /* (N, C) */, const float* inp /* (N, C) */,
                           const float* rstd /* (N) */, const float* weight /* (C) */,
                           int64_t N, int64_t C);

/* GELU, tanh approximation */
int sieve_gelu_forward(float* out /* (n) */, const float* inp /* (n) */, int64_t n);
int sieve_gelu_backward(float* dinp /* (n) */, const float* dout /* (n) */, const float* inp /* (n) */, int64_t n);

/* SwiGLU: out = silu(gate) * up, with inp rows [gate (H) | up (H)] */
int sieve_swiglu_forward(float* out /* (N, H) */, const float* inp /* (N, 2H) */, int64_t N, int64_t H);
int sieve_swiglu_backward(float* dinp /* (N, 2H) */, const float* dout /* (N, H) */,
                          const float* inp /* (N, 2H) */, int64_t N, int64_t H);

/* RoPE on the q and k parts of a qkv buffer, in place, rotate-half convention:
 * pairs (i, i + HS/2), angle t * theta^(-2i/HS). The backward rotates gradients back. */
int sieve_rope_forward(float* qkv /* (B, T, 3C) in place */, float theta, int64_t B, int64_t T, int64_t C, int64_t NH);
int sieve_rope_backward(float* dqkv /* (B, T, 3C) in place */, float theta, int64_t B, int64_t T, int64_t C, int64_t NH);

/* Causal multi-head attention on qkv = [q | k | v] (heads contiguous inside each);
 * att holds the softmax probabilities for the backward. */
int sieve_attention_forward(float* out /* (B, T, C) */, float* att /* (B, NH, T, T) */,
                            const float* qkv /* (B, T, 3C) */, int64_t B, int64_t T, int64_t C, int64_t NH);
int sieve_attention_backward(float* dqkv /* (B, T, 3C) */, const float* dout /* (B, T, C) */,
                             const float* qkv /* (B, T, 3C) */, const float* att /* (B, NH, T, T) */,
                             int64_t B, int64_t T, int64_t C, int64_t NH);

/* out[b, t] = wte[tokens[b, t]] (+ wpe[t]) */
int sieve_embedding_forward(float* out /* (B, T, C) */, const int32_t* tokens /* (B, T) */,
                            const float* wte /* (V, C) */, const float* wpe /* (T, C) or NULL */,
                            int64_t B, int64_t T, int64_t C, int64_t V);
int sieve_embedding_backward(float* dwte /* (V, C) += */, float* dwpe /* (T, C) += or NULL */,
                             const float* dout /* (B, T, C) */, const int32_t* tokens /* (B, T) */,
                             int64_t B, int64_t T, int64_t C, int64_t V);

/* Per-position loss (1 - alpha) CE + alpha tau^2 KL(softmax(t / tau) || softmax(s / tau));
 * teacher NULL means alpha = 0 (plain cross-entropy). targets -1: loss 0, no gradient. */
int sieve_loss_forward(float* losses /* (N) */, const float* logits /* (N, V) */,
                       const int32_t* targets /* (N) */, const float* teacher /* (N, V) or NULL */,
                       float alpha, float tau, int64_t N, int64_t V);
int sieve_loss_backward(float* dlogits /* (N, V) */, const float* dlosses /* (N) */,
                        const float* logits /* (N, V) */, const int32_t* targets /* (N) */,
                        const float* teacher /* (N, V) or NULL */, float alpha, float tau,
                        int64_t N, int64_t V);

/* Weight transform kinds, gradient hooks and update rules on flat vectors (what the
 * model runs per tensor). */
int sieve_transform_forward(float* wt /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                            int32_t kind, const float* params, int64_t n_params, int64_t n);
int sieve_transform_backward(float* dw /* (n) += */, const float* dwt /* (n) */, const float* w /* (n) */,
                             const float* mask /* (n) */, int32_t kind, const float* params,
                             int64_t n_params, int64_t n);
int sieve_grad_hook(float* grad /* (n) */, const float* w /* (n) */, const float* mask /* (n) */,
                    int32_t kind, const float* params, int64_t n_params, int64_t n);
/* One AdamW step at optimizer step t >= 1 (bias correction 1 - beta^t). */
int sieve_adamw_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */,
                       const float* grad /* (n) */, float lr, float beta1, float beta2, float eps,
                       float weight_decay, int64_t t, int64_t n);
/* sqrt(sum x^2) accumulated in double, in an order that depends only on n */
int sieve_global_norm(double* out, const float* x /* (n) */, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* SIEVE_H */
