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
 *   R / K rows / columns of a 2:4 op on a matrix; its groups of 4 run along K (for a linear
 *      weight R = OC, K = IC). A transposable mask also groups 4 consecutive rows per column.
 *   SG weight-scale segments per row (CAST's n)   k SLoRB block size, r = IC / k its rank
 *   rows / cols the shape of a quantized weight (rows = OC, cols = IC); G = cols / group its
 *      quantization groups per row (group consecutive columns share a scale and a zero point)
 *   M  calibration windows of a model-level quantization call   K quadrature points
 */
#ifndef SIEVE_H
#define SIEVE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SIEVE_ABI_VERSION 6

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
  int32_t default_threads;/* threads a new model gets: OMP_NUM_THREADS or the core count (cuda: for its host work,
                             the initialisation's draws) */
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
  /* Adapters (docs/kernels.md, "Adapters"): extra trained tensors next to the block linear
   * weights of adapter_scope. All zero (the default) means none, and the table, the
   * parameter count and every bit of every call are those of a model without them. */
  int32_t adapter_scope;  /* 0, or SIEVE_SCOPE_ATTN | SIEVE_SCOPE_FFN: whose linear weights get adapters */
  int64_t slorb_k;        /* SLoRB block size k (0: none): X.slorb_s (OC, IC/k) and X.slorb_p (IC/k, IC) */
  int64_t scale_segments; /* CAST weight-scale segments SG (0: none): X.scale (OC, SG), for SIEVE_TRANSFORM_SCALE */
} sieve_config;

/* SIEVE_OK if the config describes a model the engine can build; otherwise
 * SIEVE_E_INVALID_ARGUMENT and the reason in sieve_last_error(). */
int sieve_config_check(const sieve_config* config);

/* ---------------------------------------------------------------- model */

typedef struct sieve_model sieve_model; /* opaque */

enum {
  SIEVE_KIND_EMBEDDING = 0,
  SIEVE_KIND_LINEAR = 1,
  SIEVE_KIND_NORM = 2,
  SIEVE_KIND_BIAS = 3,
  SIEVE_KIND_HEAD = 4,
  SIEVE_KIND_ADAPTER = 5 /* X.slorb_s, X.slorb_p, X.scale of a linear weight X.weight (decay 0) */
};
enum { SIEVE_SCOPE_NONE = 0, SIEVE_SCOPE_ATTN = 1, SIEVE_SCOPE_FFN = 2 };

typedef struct sieve_tensor_info {
  const char* name;  /* docs/architecture.md naming; owned by the model */
  int64_t offset;    /* in floats, into every flat buffer (params, grads, masks, m, v) */
  int64_t size;      /* number of floats */
  int32_t ndim;      /* 1 or 2 */
  int64_t shape[2];  /* [out, in] for matrices (nn.Linear layout); shape[1] = 0 if ndim = 1 */
  int32_t kind;      /* SIEVE_KIND_* */
  int32_t scope;     /* SIEVE_SCOPE_* (only linear weights inside blocks have a scope; adapters have none) */
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

/* Weight transform W~ = f(W) used by the forward of a linear weight (the input gradient uses
 * W~ too). Only SIEVE_KIND_LINEAR tensors take a transform. params: kind-specific numbers
 * (n_params of them).
 *   NONE   W~ = W.
 *   MASK   W~ = M (.) W, straight-through: dW += dW~ (pruned entries included). No params.
 *   SSTE   W~ = beta S(W), S-STE's 2:4 soft threshold along IC (METHODS 3.2; IC % 4 == 0),
 *          straight-through. params: [beta], a finite number > 0, computed once by the caller
 *          (sieve_model_sste_beta) and kept in its checkpoints; never recomputed here.
 *   SCALE  W~[d, c] = A[d, c / (IC / SG)] W[d, c], A = the tensor's X.scale adapter (CAST's
 *          weight scaling, METHODS 5.4). Not straight-through: dW += A (.) dW~ and
 *          dA[d, s] += sum over the segment's c of dW~[d, c] W[d, c]. No params; the tensor
 *          needs a scale adapter (sieve_config.scale_segments and adapter_scope). */
enum {
  SIEVE_TRANSFORM_NONE = 0,
  SIEVE_TRANSFORM_MASK = 1,
  SIEVE_TRANSFORM_SSTE = 2,
  SIEVE_TRANSFORM_SCALE = 3
};
int sieve_model_set_transform(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* Gradient hook, applied after clipping and before the update rule. */
enum { SIEVE_HOOK_NONE = 0, SIEVE_HOOK_MASKED_DECAY = 1 /* g += lambda (1 - M) (.) W; params: [lambda] */ };
int sieve_model_set_grad_hook(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* Update rule (parameter group) of a tensor; t is the 1-based optimizer step.
 *   ADAMW   no params.  FROZEN  not updated; no params.
 *   AST     AST's Adam (METHODS 4.3), params [lambda >= 0]: W *= 1 - lr wd (decay tensors);
 *           m = b1 m + (1 - b1) g (the loss gradient only); u = m + lambda (1 - M) (.) W;
 *           v = b2 v + (1 - b2) u^2; W -= (lr / (1 - b1^t)) u / (sqrt(v) / sqrt(1 - b2^t) + eps).
 *   ADAMS   CAST's AdamS (METHODS 5.3), params [alpha in [0, 1], lambda >= 0]:
 *           m = b1 m + (1 - b1) g; u = (1 - alpha) m + alpha lambda sign(W) where M = 0, m where
 *           M != 0 (sign(0) = 0); v = b2 v + (1 - b2) u^2; W -= (lr / (1 - b1^t)) u /
 *           (sqrt(v) / sqrt(1 - b2^t) + eps). No decoupled weight decay (opts.weight_decay is
 *           not applied): the decay of pruned weights is the rule's own L1 term.
 * Both read the mask buffer and keep the AdamW moment buffers (m holds the raw-gradient momentum). */
enum {
  SIEVE_RULE_ADAMW = 0,
  SIEVE_RULE_FROZEN = 1,
  SIEVE_RULE_AST = 2,
  SIEVE_RULE_ADAMS = 3
};
int sieve_model_set_update_rule(sieve_model* model, int64_t tensor, int32_t kind, const float* params, int64_t n_params);

/* ---- 2:4 sparsity on a model's tensors (docs/kernels.md, "2:4 sparsity")
 * `tensors` lists tensor indices (n >= 0 of them); per-tensor results come back in that order. */

enum { SIEVE_MASK_MAGNITUDE = 0, SIEVE_MASK_TRANSPOSABLE = 1 };

/* Recomputes the masks of the listed linear weights from their current parameters and writes
 * them into the masks buffer: MAGNITUDE keeps the 2 largest |w| of every 4 consecutive along IC
 * (sieve_mask24_magnitude); TRANSPOSABLE is 2:4 along IC and along OC (sieve_mask24_transposable;
 * OC % 4 == 0 too). flips[i] = mask entries of tensor i that changed (METHODS 2.3): 0, 2 or 4
 * per group; the first call against the initial all-ones masks counts the pruned half.
 * Checks the cancel flag between tensors (the tensors before it are updated). */
int sieve_model_update_masks(sieve_model* model, int32_t method, const int64_t* tensors, int64_t n,
                             int64_t* flips /* (n) */);

/* pruned_abs[i] = sum of |W| where the mask is 0, total_abs[i] = sum of |W|, over tensor i's
 * parameters, in double, in a fixed order. */
int sieve_model_mask_stats(sieve_model* model, const int64_t* tensors, int64_t n, double* pruned_abs /* (n) */,
                           double* total_abs /* (n) */);

/* violations[i] = groups of 4 consecutive parameters along IC of linear weight i with more than 2
 * nonzeros; with both_ways = 1 plus the groups of 4 consecutive rows along OC (OC % 4 == 0). */
int sieve_model_count24(sieve_model* model, const int64_t* tensors, int64_t n, int32_t both_ways,
                        int64_t* violations /* (n) */);

/* S-STE's fixed scale of a linear weight from its current parameters: sieve_sste_beta on the
 * tensor; an error naming it when S(W) is all zero. */
int sieve_model_sste_beta(sieve_model* model, int64_t tensor, double* beta);

/* MVUE on a linear weight (METHODS 2.7): with on = 1 its weight gradient is computed from
 * MVUE(dZ) (dZ (N, OC) sparsified 2:4 along the N tokens, sieve_mvue24), while the input and
 * bias gradients use the dense dZ. The numbers are drawn from
 *   key = mix(mix(mix(mix(seed) + step) + micro) + tensor)   (mix: SplitMix64's finalizer)
 * step: the optimizer step counter, micro: the sieve_model_forward_backward calls since the
 * last sieve_model_zero_grad, tensor: the tensor's index; then sieve_mvue24(..., key) on the
 * tensor's columns of dZ. The same weights, data, step and micro give the same bits, so a run
 * resumed from a checkpoint draws what the uninterrupted run drew. */
int sieve_model_set_mvue(sieve_model* model, int64_t tensor, int32_t on, uint64_t seed);

/* Writes each transformed linear weight's effective weight into its parameters and sets its
 * transform back to NONE: MASK W = M (.) W; SSTE W = beta S(W); SCALE W = A (.) W and A = 1.
 * The plain forward then computes what the transformed one did (SLoRB branches, which are not
 * transforms, stay). Checks the cancel flag between tensors (those before it are done). */
int sieve_model_materialize(sieve_model* model);

/* SLoRB's mean initialisation (METHODS 4.5) of the listed linear weights, which must have SLoRB
 * adapters: X.slorb_s[d, i] = (1/k) sum over j in block i of W[d, j] (1 - M[d, j]), from the
 * current parameters and masks (sieve_slorb_init_mean). X.slorb_p is left as it is. */
int sieve_model_slorb_init_mean(sieve_model* model, const int64_t* tensors, int64_t n);

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
  float weight_decay;     /* decoupled, on tensors with decay = 1 only */
  float grad_clip;        /* global-norm clip; <= 0: no clipping */
  int32_t skip_nonfinite; /* 1: a non-finite gradient norm changes nothing (see below); 0: update anyway */
} sieve_optim_opts;

/* One optimizer step: global gradient norm (reported before clipping) -> clip -> each
 * tensor's gradient hook -> each tensor's update rule; then step += 1. The grads
 * buffer is left holding the clipped, hooked gradient.
 * With skip_nonfinite = 1 and a norm that is NaN or infinite (as a float), the call only
 * reports the norm: weights, moments, grads and the step counter are left as they were, so
 * the caller can discard the step (the caller sees it as a non-finite *grad_norm). */
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

/* ---- quantization (docs/kernels.md, "Weight quantization") */

/* For each listed block linear weight (SIEVE_KIND_LINEAR), the sum over all B T positions of
 * x x^T, x the layer's input row exactly as the memory-light forward (sieve_model_eval_nll)
 * feeds it: attn.qkv norm1's output, attn.out the attention output, mlp.fc / gate / up norm2's
 * output, mlp.proj / down the activation's output. Not divided by B T (GPTQ does not care; see
 * sieve_gptq). out holds one (IC, IC) matrix per tensor, in list order, exactly symmetric;
 * float32 Gram matrices of 256 positions at a time, summed in double in a fixed order, so the
 * bits do not depend on the thread count. Reads the model only. Calls progress after each
 * chunk of windows and checks the cancel flag between chunks and layers. */
int sieve_model_input_hessians(sieve_model* model, double* out /* (sum over tensors of IC IC) */,
                               const int64_t* tensors, int64_t n, const int32_t* tokens /* (B, T) */, int64_t B,
                               int64_t T, sieve_progress_fn progress, void* user);

/* Post-quantization integral (METHODS 6.2). With w the listed tensors' current parameters and
 * delta their perturbations (concatenated in list order, each of its tensor's size), for each
 * point s_k: parameters = w + s_k delta (the other tensors untouched), F = the mean
 * cross-entropy over every predicted position of the M windows (targets -1 ignored), computed
 * in micro-batches of `micro` windows whose gradients add up to the gradient g of that mean;
 * then pqi_i += weights_k delta_i g_i (double). losses = [F(w), F(w + delta), F(w + s_k delta)
 * for each k]. The parameters are restored bit for bit at the end, also on error or cancel.
 * The grads buffer is scratch (it holds the last point's gradient, or partial sums). Seams stay
 * as the caller set them; MVUE, if on, draws with the model's current step and micro counters.
 * Progress counts windows: (K + 2) M in all. Checks the cancel flag between layers. */
int sieve_model_post_quant_integral(sieve_model* model, double* pqi /* (sum of the tensors' sizes) */,
                                    double* losses /* (K + 2) */, const int64_t* tensors, int64_t n,
                                    const float* deltas /* (sum of the tensors' sizes) */,
                                    const double* points /* (K) in [0, 1] */, const double* weights /* (K) */,
                                    int64_t K, const int32_t* inputs /* (M, T) */,
                                    const int32_t* targets /* (M, T) ids or -1 */, int64_t M, int64_t T,
                                    int64_t micro, sieve_progress_fn progress, void* user);

/* Cancellation: sets a flag the running call checks between steps (thread-safe; the
 * only function that may be called while another call on the model runs). */
int sieve_model_cancel(sieve_model* model);
int sieve_model_clear_cancel(sieve_model* model);

/* ---- benchmark hooks */

typedef struct sieve_timers {
  double total_seconds;     /* inside sieve_model_forward_backward */
  double gemm_seconds;      /* linear-layer and LM-head GEMMs within it */
  double gemm_flops;        /* their floating-point operations (2 M N K each) */
  double sparse_gemm_flops; /* the part of gemm_flops multiplied by 2:4 weights (cuSPARSELt; 0 on the CPU) */
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
 * model runs per tensor). The flat transforms take NONE, MASK and SSTE (groups of 4
 * consecutive elements, n % 4 == 0); SCALE needs a shape and its scale tensor:
 * sieve_weight_scale_forward / _backward below. */
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
/* One step of AST's rule / CAST's AdamS (SIEVE_RULE_AST / SIEVE_RULE_ADAMS above). */
int sieve_ast_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                     const float* mask /* (n) */, float lr, float beta1, float beta2, float eps, float weight_decay,
                     float lambda, int64_t t, int64_t n);
int sieve_adams_update(float* w /* (n) */, float* m /* (n) */, float* v /* (n) */, const float* grad /* (n) */,
                       const float* mask /* (n) */, float lr, float beta1, float beta2, float eps, float alpha,
                       float lambda, int64_t t, int64_t n);
/* sqrt(sum x^2) accumulated in double, in an order that depends only on n */
int sieve_global_norm(double* out, const float* x /* (n) */, int64_t n);

/* ---- 2:4 sparsity (METHODS 1-5). Groups of 4 run along K, so K % 4 == 0 (and R % 4 == 0 for
 * the transposable mask), else SIEVE_E_INVALID_ARGUMENT naming the shape. Masks are 1 (kept)
 * or 0. NaN ranks as magnitude -1, below every number: it is kept only where the rule has to
 * keep something and nothing else is left (the mask stays exactly 2:4). */

/* Keeps the 2 largest |w| of every group: element i is kept iff it beats at least 2 of the
 * other 3, where a beats b iff |a| > |b|, or |a| == |b| and a's index is higher (METHODS 1.3:
 * all equal keeps 2 and 3; |w| = (2, 1, 1, 0) keeps 0 and 2). */
int sieve_mask24_magnitude(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K);
/* Transposable 2:4 (METHODS 2.6): every 4x4 block takes the pattern of the 90 with two ones
 * per row and per column that maximises sum |w| P, ties to the lowest index in the pattern
 * order: lexicographic in (row 0's pair, row 1's, row 2's, row 3's) with a row's pairs of
 * columns ordered (0,1) < (0,2) < (0,3) < (1,2) < (1,3) < (2,3). A pattern's score is
 * ((p0 + p1) + p2) + p3 in float, p_r = the sum of row r's two kept |w|. */
int sieve_mask24_transposable(float* mask /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K);
/* S-STE's soft threshold (METHODS 3.2): per group t = the 2nd smallest |a| (branch-free:
 * min(max(min(|a0|,|a1|), min(|a2|,|a3|)), min(max(|a0|,|a1|), max(|a2|,|a3|)))) and
 * out_i = sign(a_i) max(|a_i| - t, 0). A group holding a NaN gives NaN in all 4. */
int sieve_sste_threshold(float* out /* (R, K) */, const float* w /* (R, K) */, int64_t R, int64_t K);
/* beta = <W, S(W)> / <S(W), S(W)> (METHODS 3.3), accumulated in double in an order fixed by
 * (R, K); SIEVE_E_INVALID_ARGUMENT when S(W) is all zero or beta is not finite. */
int sieve_sste_beta(double* beta, const float* w /* (R, K) */, int64_t R, int64_t K);
/* MVUE24_approx (METHODS 2.7) along N: per column d and group q of 4 consecutive rows, with
 * a_i = |x_i| + 2^-23, draw i1 with P(i) = a_i / S, then i2 from the other three with P(j) ~ a_j;
 * out = x_i / p_i at i1 and i2 (p_i the inclusion probability), 0 elsewhere, all in single
 * precision as the paper's kernel (core/mvue.h, which the CUDA backend runs too). The two uniforms
 * of (d, q) come from draw q of the stream keyed c = mix(seed + (d + 1) 0xD1B54A32D192ED03)
 * (draw k = mix(c + (k + 1) 0x9E3779B97F4A7C15)): its bits 63..40 and 39..16, each times 2^-24.
 * So the result depends only on (seed, g), not on threads. A trailing partial group (N % 4 rows)
 * and a group whose S is not finite (a non-finite value, or magnitudes past single precision)
 * are copied unchanged (trivially unbiased). */
int sieve_mvue24(float* out /* (N, OC) */, const float* g /* (N, OC) */, int64_t N, int64_t OC, uint64_t seed);
/* flips = the number of i with before[i] != after[i] */
int sieve_mask_flips(int64_t* flips, const float* before /* (n) */, const float* after /* (n) */, int64_t n);
/* groups = the groups of 4 along K with more than 2 nonzeros */
int sieve_count24_violations(int64_t* groups, const float* w /* (R, K) */, int64_t R, int64_t K);
/* CAST's weight scaling (SIEVE_TRANSFORM_SCALE): wt[d, c] = scale[d, c / (K / SG)] w[d, c];
 * the backward adds scale (.) dwt into dw and sum_c dwt w per segment into dscale. K % SG == 0. */
int sieve_weight_scale_forward(float* wt /* (R, K) */, const float* w /* (R, K) */, const float* scale /* (R, SG) */,
                               int64_t R, int64_t K, int64_t SG);
int sieve_weight_scale_backward(float* dw /* (R, K) += */, float* dscale /* (R, SG) += */, const float* dwt /* (R, K) */,
                                const float* w /* (R, K) */, const float* scale /* (R, SG) */, int64_t R, int64_t K,
                                int64_t SG);
/* SLoRB's mean initialisation: s[d, i] = (1/k) sum_{j = ik}^{(i+1)k - 1} w[d, j] (1 - mask[d, j]),
 * summed in double; K % k == 0. */
int sieve_slorb_init_mean(float* s /* (R, K / k) */, const float* w /* (R, K) */, const float* mask /* (R, K) */,
                          int64_t R, int64_t K, int64_t k);

/* ---- weight-only quantization (docs/kernels.md, "Weight quantization"). A weight w (rows, cols)
 * is cut, per row, into groups of `group` consecutive columns (cols % group == 0); each group has
 * a float scale and a uint8 zero point, each weight a uint8 code in [0, 2^bits - 1], bits in
 * {2, 3, 4, 8}, and dequantizes to (code - zero) scale. Rounding is half to even everywhere.
 *   asymmetric: lo = min(min w, 0), hi = max(max w, 0) over the group's kept weights,
 *               scale = (hi - lo) / (2^bits - 1), zero = clamp(round(-lo / scale), 0, 2^bits - 1);
 *   symmetric:  zero = 2^(bits - 1), scale = max |w| / (2^(bits - 1) - 1);
 *   both:       code = clamp(round(w / scale) + zero, 0, 2^bits - 1); a scale of 0 (a group of
 *               zeros) becomes 1. 0 is always on the grid, so a zero weight gets code `zero` and
 *               dequantizes to exactly 0. Symmetric codes reach code 0 (-2^(bits - 1) steps)
 *               only by clamping: round-to-nearest never does.
 * mask (nullable, 1 kept, 0 pruned): a pruned weight does not enter its group's lo, hi or
 * max |w| and gets code `zero`, so a 2:4 weight stays exactly 2:4. w must be finite.
 * device (SIEVE_DEVICE_*): where the op runs; the arrays are host memory either way, and every
 * device gives the CPU's bits. SIEVE_E_UNAVAILABLE when this build has no backend for it. */

int sieve_quantize_rtn(int32_t device, uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */,
                       uint8_t* zeros /* (rows, G) */, const float* w /* (rows, cols) */,
                       const float* mask /* (rows, cols) or NULL */, int64_t rows, int64_t cols, int32_t bits,
                       int64_t group, int32_t symmetric);

/* out = (code - zero) scale; codes and zeros must be in [0, 2^bits - 1], scales finite and > 0. */
int sieve_dequantize(int32_t device, float* out /* (rows, cols) */, const uint8_t* codes /* (rows, cols) */,
                     const float* scales /* (rows, G) */, const uint8_t* zeros /* (rows, G) */, int64_t rows,
                     int64_t cols, int32_t bits, int64_t group);

/* GPTQ (Frantar et al. 2022) on the grid above, with hessian = sum of x x^T over calibration
 * inputs (sieve_model_input_hessians; any positive multiple gives the same codes up to rounding,
 * as every step is invariant to the scale of H). Only its upper triangle is read.
 *   - dead columns (H_ii = 0): H's row and column i become e_i and w[:, i] = 0;
 *   - damping: lambda = damp mean(diag H) (after the dead columns) is added to the diagonal;
 *   - U = the upper Cholesky factor of H^-1, in double (from the Cholesky factor of H with its
 *     rows and columns reversed, inverted: no explicit inverse); an error if H + lambda I is not
 *     positive definite;
 *   - columns in order (act_order = 0) or by descending diag(H) (act_order = 1, stable); each
 *     weight is quantized and its error (w - q) / U_ii, times U's row, is subtracted from the
 *     later columns of its row (in double; the reference implementation's lazy column batches
 *     only reorder these subtractions);
 *   - group parameters: in order, from the current (error-updated) weights of the group when its
 *     first column is reached; with act_order, from the original weights before any update
 *     ("static groups"), since the group's columns are then spread over the whole order;
 *   - masked weights (mask 0) count as 0: they get code `zero`, never contribute an error and do
 *     not enter the group parameters (the masked model M (.) w is what is quantized).
 * Rows are independent; the result does not depend on the thread count or the device (the host
 * builds U, the order and the static groups; the device runs the rows). */
int sieve_gptq(int32_t device, uint8_t* codes /* (rows, cols) */, float* scales /* (rows, G) */,
               uint8_t* zeros /* (rows, G) */, const float* w /* (rows, cols) */, const double* hessian /* (cols, cols) */,
               const float* mask /* (rows, cols) or NULL */, int64_t rows, int64_t cols, int32_t bits, int64_t group,
               int32_t symmetric, double damp, int32_t act_order);

#ifdef __cplusplus
}
#endif

#endif /* SIEVE_H */
