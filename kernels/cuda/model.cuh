// model.cuh — the decoder-only transformer (GPT-2 and LLaMA families) on one NVIDIA GPU,
// behind the core's ModelBackend interface (core/backend.h): the CUDA twin of cpu/model.h.
//
// The layout, step counters and cancel flag are the core's; everything here is the GPU's own:
// the flat fp32 buffers (params, grads, masks, moments) allocated on first use, a bf16 copy of
// what every GEMM multiplies (W, or W~ = f(W) under a transform), the training activations
// (fp32, sized for the largest B T seen, with bf16 copies of every GEMM input), and the
// timers. Numbers cross to the host only through read() and the scalars a member returns.
//
// Precision: GEMMs take bf16 operands and accumulate in fp32 (cuBLASLt); everything else
// (norms, activations, attention, the loss, the optimizer) is fp32 as on the CPU, with fp32
// master weights and moments. Results agree with the CPU backend within bf16 tolerance
// (docs/cuda.md); the optimizer, masks and S-STE are the CPU's bit for bit.
//
// 2:4 GEMMs: a linear layer whose W~ is known to be 2:4 along IC (every tensor of it under the
// SSTE transform, or under MASK with a mask update_masks made) multiplies its forward through
// cuSPARSELt (sparse_gemm.cuh), and its input gradient too when the masks are transposable; the
// compressed weight is remade once per pass, since W changes every step. A layer whose every
// weight has MVUE on multiplies its weight gradient on 2:4 as well (MVUE's dZ is 2:4 along the
// tokens), whatever its W~. Those products round their output to bf16 (cuSPARSELt writes bf16
// from bf16 operands); a 2:4 weight gradient is then added to the fp32 gradient. A mask written
// from the host is counted when it arrives: a layer whose mask is not 2:4 keeps the dense GEMMs.
//
// SLoRB adapters (METHODS 4.5) add (X P^T) S^T to their weight's output columns through two
// more bf16 GEMMs, X P^T kept in bf16 for the backward.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "attention.cuh"
#include "core/model.h"
#include "device_buffer.cuh"
#include "gemm.cuh"
#include "layers.cuh"
#include "sparse_gemm.cuh"

namespace sieve::cuda {

// Pointers into the training arenas for one (B, T), N = B T (carve_activations in model.cu).
// The per-layer arrays keep one slice per block for the backward; the gradients of
// activations are one block's worth, reused by every block. *_bf are the bf16 copies the
// GEMMs read. The norms' and activation functions' outputs exist only as those copies: their
// fp32 values are written (into tap_inp) only for a linear tap, which reads them at once.
struct Activations {
  int64_t B = 0, T = 0, head_rows = 0;
  float *x, *xmid, *ln1_mean, *ln1_rstd, *qkv, *lse, *atty, *ln2_mean, *ln2_rstd, *fc;
  float *lnf_mean, *lnf_rstd;
  float* tap_inp;  // (N, max(C, H)): a linear layer's fp32 input while a tap is set
  float *dx, *dln, *datty, *dqkv, *dfc, *dact;
  // one LM-head chunk of (head_rows, V) logits with rows head_ld(V) apart, the teacher's rows
  // alike; the per-position CE and KL
  float *logits, *teacher, *ce, *kl;
  float *att_scratch, *reduce_scratch;
  __nv_bfloat16 *ln1_bf, *atty_bf, *ln2_bf, *act_bf, *lnf_bf;
  __nv_bfloat16* grad_bf;  // the bf16 copy of whichever output gradient a GEMM multiplies next
  __nv_bfloat16* sparse_bf;  // the bf16 result of a 2:4 GEMM (null while no layer can have one)
  __nv_bfloat16* wgrad_bf;   // one layer's bf16 dW from its 2:4 weight-gradient GEMM (empty while none has one)
  // SLoRB: (L, N, slorb.width) each block's X P^T of its adapted weights (the second GEMM's
  // operand, kept for the backward), and (N, slorb.rmax) one weight's d loss / d X P^T
  __nv_bfloat16 *slorb_xp, *slorb_dxp;
  float* scale_dwt;          // one scaled weight's dW~ before SCALE's backward (empty while none is scaled)
  int32_t* targets;        // (N) on the device
};

// SIEVE_CUDA_WGRAD24: which layers with MVUE on multiply their weight gradient on 2:4. The product
// compresses dZ on every call; on an H200 (cuSPARSELt 0.8.0, 16384 tokens) it beat cuBLASLt at the
// LLaMA-7B/70B FFN shapes (1.16-1.42x) and lost or tied at GPT-2's (0.51-1.03x), hence the default.
enum class WeightGrad24 {
  automatic,  // unset or "auto": layers whose OC and IC are both at least kWeightGrad24MinDim
  on,         // "on": every layer cuSPARSELt takes
  off,        // "off": none (the dense GEMM of MVUE's dZ)
};
constexpr int64_t kWeightGrad24MinDim = 4096;
// Anything else is refused with SIEVE_E_INVALID_ARGUMENT naming the variable.
WeightGrad24 weight_grad24_from_env();

// What a tensor's W~ is known to be: 2:4 along IC (forward products), or along OC as well
// (transposable: the input gradient's product too). Ordered: a layer is the least of its tensors.
enum Mask24 : uint8_t { kNot24 = 0, kAlongIC = 1, kTransposable = 2 };

class CudaModel final : public ModelBackend {
 public:
  explicit CudaModel(const sieve_model& model);  // allocates the parameters (zeros)
  ~CudaModel() override;

  void read(int32_t which, int64_t offset, int64_t count, float* dst) override;
  void write(int32_t which, int64_t offset, int64_t count, const float* src) override;
  void seam_changed(int64_t tensor, Seam seam) override;
  void zero_grad() override;
  sieve_loss forward_backward(const int32_t* inputs, const int32_t* targets, const float* teacher,
                              const sieve_loss_opts& opts, int64_t B, int64_t T) override;
  float optimizer_step(const sieve_optim_opts& opts, int64_t t) override;
  void infer(float* nll, float* logits, const int32_t* tokens, int64_t B, int64_t T, sieve_progress_fn progress,
             void* user) override;
  void update_masks(int32_t method, const int64_t* tensors, int64_t n, int64_t* flips) override;
  void mask_stats(const int64_t* tensors, int64_t n, double* pruned_abs, double* total_abs) override;
  void count24(const int64_t* tensors, int64_t n, bool both_ways, int64_t* violations) override;
  void sste_dots(int64_t tensor, double* ws, double* ss) override;
  void slorb_init_mean(const int64_t* tensors, int64_t n) override;
  void materialize(int64_t tensor) override;
  void input_hessians(double* out, const int64_t* tensors, int64_t n, const int32_t* tokens, int64_t B, int64_t T,
                      sieve_progress_fn progress, void* user) override;
  void post_quant_integral(double* pqi, double* losses, const int64_t* tensors, int64_t n, const float* deltas,
                           const double* points, const double* weights, int64_t K, const int32_t* inputs,
                           const int32_t* targets, int64_t M, int64_t T, int64_t micro, sieve_progress_fn progress,
                           void* user) override;
  sieve_timers timers() const override;
  void reset_timers() override;

  // Read by the passes in model.cu.
  const sieve_model& model;  // step counters, cancel flag
  const Layout& net;         // the tensor table and seam settings
  const SlorbColumns slorb;  // where each SLoRB weight's X P^T sits in Activations::slorb_xp
  // SIEVE_CUDA_COMPRESS and SIEVE_CUDA_WGRAD24, read when the model is made
  const Compression compression;
  const WeightGrad24 weight_grad24;
  cudaStream_t stream = nullptr;
  // The 2:4 weights' compressions run here, ahead of the forward that reads them (prepare_weights);
  // weights_ready marks weights_bf written, compressions_done the last compression queued.
  cudaStream_t compress_stream = nullptr;
  cudaEvent_t weights_ready = nullptr, compressions_done = nullptr;
  Blas blas;

  DeviceBuffer<float> params, grads, masks, adam_m, adam_v;  // (P) each, one layout
  DeviceBuffer<__nv_bfloat16> weights_bf;                    // (P) what the GEMMs multiply, refreshed per pass
  DeviceBuffer<__nv_bfloat16> head_bf;  // (head_ld(V), C): the LM head's rows of weights_bf, then zero rows
  DeviceBuffer<float> head_grad;        // (head_ld(V), C): a training step's head weight gradient (zero padding rows)
  DeviceBuffer<float> rope_cos, rope_sin;                    // (context, HS/2), llama
  DeviceBuffer<double> doubles;                              // scratch of the double reductions
  DeviceBuffer<int64_t> counts;                              // scratch of the integer counts

  DeviceBuffer<float> train_mem;
  DeviceBuffer<__nv_bfloat16> train_bf;
  DeviceBuffer<int32_t> train_ints;
  Activations acts{};
  EmbeddingPlan embedding;  // the batch's tokens on the device and its embedding-gradient plan

  // The 2:4 GEMMs: the cuSPARSELt handle and one layer per linear (keyed by its first tensor),
  // made on first use; declared in this order so the layers go first. weights_version counts
  // the passes that remade weights_bf: the compressed copies are remade when it moves.
  std::unique_ptr<SparseLt> sparse_lt;
  std::unordered_map<int64_t, std::unique_ptr<SparseLinear>> sparse_layers;
  std::unordered_map<int64_t, std::unique_ptr<SparseWeightGrad>> sparse_wgrads;  // the MVUE layers
  uint64_t weights_version = 0;
  // Per tensor, what its mask is known to be (Mask24): set by update_masks and by a write.
  std::vector<uint8_t> mask24;

  // Called by every linear layer's forward with its fp32 input rows while set (input_hessians).
  LinearTap linear_tap;

  sieve_timers timing{};

  // The flat buffer `which` (SIEVE_BUFFER_*), allocated with its initial value if needed.
  DeviceBuffer<float>& buffer(int32_t which);
  float* flat(int32_t which);
};

// The CUDA backend object (exported as sieve_cuda_backend for the core's loader, core/backends.cc).
const Backend& backend();

}  // namespace sieve::cuda
