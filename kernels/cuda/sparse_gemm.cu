// sparse_gemm.cu — SparseLt and SparseLinear (sparse_gemm.cuh) on cuSPARSELt.
//
// Layout of SparseLinear's products, the one torch's cuSPARSELt path uses for a linear layer: the
// sparse operand is cuSPARSELt's A, the row-major W (OC, IC); the activations are its B, stored
// (N, K) row-major and taken transposed; the result D (M, N) is column-major with leading dimension
// M, which is byte for byte the row-major (N, M) the caller wants. The forward product uses
// op(A) = W (M = OC, K = IC); the input gradient uses op(A) = W^T (M = IC, K = OC).
//
// SparseWeightGrad's: A is dout (N, OC) row-major taken transposed (op(A) = dout^T, M = OC, K = N,
// the input gradient's form with dout in W's place); B is inp (N, IC) row-major as it is; D is
// dW (OC, IC) row-major.
#include "sparse_gemm.cuh"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

#include "compress24.cuh"
#include "device_buffer.cuh"

// Since cuSPARSELt 0.8 an algorithm selection holds resources that this function releases;
// earlier releases have no such function. Declared weak so that either library loads.
extern "C" cusparseStatus_t CUSPARSELT_API
cusparseLtMatmulAlgSelectionDestroy(const cusparseLtMatmulAlgSelection_t* algSelection) __attribute__((weak));

namespace sieve::cuda {

namespace {

// cuSPARSELt's opaque objects are fixed-size structs whose size changed across releases (11024
// bytes in 0.4, 512 aligned to 16 since 0.8). The library loaded at run time may be older than
// the header compiled against, so each object gets room for the largest, aligned as the newest
// wants, and stays at one address (a plan keeps pointers to its descriptors).
template <class T>
union LtObject {
  static_assert(sizeof(T) <= 16384, "a cuSPARSELt object larger than the room kept for it");
  T v;
  alignas(16) unsigned char room[16384];
  LtObject() : room{} {}
};

// The compressed form of W depends on the sparse descriptor and the op only (cuSPARSELt's
// Compress2 needs nothing else), so it is made once with a plan for a small N and read by the
// plans of every N.
constexpr int64_t kCompressN = 64;

// A CUDA event for ordering work across streams (no timing), created on first record.
class StreamMark {
 public:
  StreamMark() = default;
  StreamMark(const StreamMark&) = delete;
  StreamMark& operator=(const StreamMark&) = delete;
  ~StreamMark() {
    if (ev_) cudaEventDestroy(ev_);
  }
  void record(cudaStream_t stream) {
    if (!ev_) SIEVE_CUDA(cudaEventCreateWithFlags(&ev_, cudaEventDisableTiming));
    SIEVE_CUDA(cudaEventRecord(ev_, stream));
  }
  // Work queued on `stream` after this waits for what preceded the last record (nothing if none).
  void wait_on(cudaStream_t stream) const {
    if (ev_) SIEVE_CUDA(cudaStreamWaitEvent(stream, ev_, 0));
  }

 private:
  cudaEvent_t ev_ = nullptr;
};

struct LtPlan {
  const cusparseLtHandle_t* h;
  LtObject<cusparseLtMatDescriptor_t> b, c;  // the dense operand; C = D
  LtObject<cusparseLtMatmulDescriptor_t> md;
  LtObject<cusparseLtMatmulAlgSelection_t> alg;
  LtObject<cusparseLtMatmulPlan_t> plan;
  bool has_b = false, has_c = false, has_alg = false, has_plan = false;
  bool searched = false;
  size_t workspace = 0;  // bytes the chosen kernel needs

  explicit LtPlan(const cusparseLtHandle_t* handle) : h(handle) {}
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (has_plan) cusparseLtMatmulPlanDestroy(&plan.v);
    if (has_alg && cusparseLtMatmulAlgSelectionDestroy) cusparseLtMatmulAlgSelectionDestroy(&alg.v);
    if (has_c) cusparseLtMatDescriptorDestroy(&c.v);
    if (has_b) cusparseLtMatDescriptorDestroy(&b.v);
  }

  int config_id() const {
    int id = -1;
    SIEVE_CUSPARSELT(cusparseLtMatmulAlgGetAttribute(h, &alg.v, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &id, sizeof id));
    return id;
  }
};

// Where a product's dense operands live (the file's opening comment).
enum class Layout {
  linear,       // D (M, N) column-major = op(A) (M, K) B^T, B stored (N, K) row-major
  weight_grad,  // D (M, N) row-major = op(A) (M, K) B, B stored (K, N) row-major
};

// The plan of D = op(A) B' for the structured descriptor a, in `layout`.
std::unique_ptr<LtPlan> make_plan(const cusparseLtHandle_t* h, const cusparseLtMatDescriptor_t* a,
                                  cusparseOperation_t op_a, int64_t M, int64_t K, int64_t N,
                                  Layout layout = Layout::linear) {
  auto p = std::make_unique<LtPlan>(h);
  const bool linear = layout == Layout::linear;
  if (linear)
    SIEVE_CUSPARSELT(cusparseLtDenseDescriptorInit(h, &p->b.v, N, K, K, 16, CUDA_R_16BF, CUSPARSE_ORDER_ROW));
  else
    SIEVE_CUSPARSELT(cusparseLtDenseDescriptorInit(h, &p->b.v, K, N, N, 16, CUDA_R_16BF, CUSPARSE_ORDER_ROW));
  p->has_b = true;
  SIEVE_CUSPARSELT(cusparseLtDenseDescriptorInit(h, &p->c.v, M, N, linear ? M : N, 16, CUDA_R_16BF,
                                                 linear ? CUSPARSE_ORDER_COL : CUSPARSE_ORDER_ROW));
  p->has_c = true;
  SIEVE_CUSPARSELT(cusparseLtMatmulDescriptorInit(
      h, &p->md.v, op_a, linear ? CUSPARSE_OPERATION_TRANSPOSE : CUSPARSE_OPERATION_NON_TRANSPOSE, a, &p->b.v,
      &p->c.v, &p->c.v, CUSPARSE_COMPUTE_32F));
  SIEVE_CUSPARSELT(cusparseLtMatmulAlgSelectionInit(h, &p->alg.v, &p->md.v, CUSPARSELT_MATMUL_ALG_DEFAULT));
  p->has_alg = true;
  SIEVE_CUSPARSELT(cusparseLtMatmulPlanInit(h, &p->plan.v, &p->md.v, &p->alg.v));
  p->has_plan = true;
  SIEVE_CUSPARSELT(cusparseLtMatmulGetWorkspace(h, &p->plan.v, &p->workspace));
  return p;
}

// One product (forward or input gradient): its compressed copy of W and its plans by N.
struct Side {
  cusparseOperation_t op = CUSPARSE_OPERATION_NON_TRANSPOSE;
  int64_t M = 0, K = 0;
  bool own = false;  // compressed by compress24 (verified for this shape and op)
  std::unique_ptr<LtPlan> compress_plan;
  size_t compressed_bytes = 0;
  DeviceBuffer<char> compressed, compress_scratch;
  std::map<int64_t, std::unique_ptr<LtPlan>> plans;
};

// ---- SparseLt

// `buffer` grown to at least `bytes` (whole MiB). Growing waits for the device, since work queued
// earlier may still use the old one; it happens only while plans are being made.
void* at_least(DeviceBuffer<char>& buffer, size_t bytes) {
  if ((int64_t)bytes > buffer.size()) {
    SIEVE_CUDA(cudaDeviceSynchronize());
    buffer = DeviceBuffer<char>(0);
    buffer = DeviceBuffer<char>((int64_t)((bytes + (1 << 20) - 1) >> 20 << 20));
  }
  return buffer.get();
}

}  // namespace

struct SparseLt::State {
  LtObject<cusparseLtHandle_t> handle;
  DeviceBuffer<char> workspace;
  // the weight-gradient products' compressed operand and cuSPARSELt's compression scratch
  DeviceBuffer<char> operand, operand_scratch;
  // (M, K, op) -> whether compress24 wrote cuSPARSELt's bytes for it
  std::map<std::tuple<int64_t, int64_t, int>, bool> own_layout;

  const cusparseLtHandle_t* h() const { return &handle.v; }
  void* workspace_for(size_t bytes) { return at_least(workspace, bytes); }

  // Whether compress24 writes, for op(A) (M, K) of a stored (rows, cols) bf16 matrix (M = rows
  // unless transposed), the `bytes` cuSPARSELt's compression writes through `plan`: compared once
  // per SparseLt, shape and op on a random 2:4 probe, since the layout is undocumented.
  bool own_layout_holds(const LtPlan& plan, int64_t rows, int64_t cols, bool transposed, size_t bytes) {
    const int64_t M = transposed ? cols : rows, K = transposed ? rows : cols;
    if (!compress24_fits(M, K) || bytes != (size_t)(M * K / 8 * 9)) return false;
    const auto key = std::make_tuple(M, K, (int)transposed);
    auto it = own_layout.find(key);
    if (it != own_layout.end()) return it->second;
    size_t compressed_bytes = 0, scratch_bytes = 0;  // the first is `bytes`: the scratch is what is asked
    SIEVE_CUSPARSELT(cusparseLtSpMMACompressedSize(h(), &plan.plan.v, &compressed_bytes, &scratch_bytes));
    DeviceBuffer<__nv_bfloat16> probe(rows * cols);
    DeviceBuffer<char> theirs((int64_t)bytes), mine((int64_t)bytes),
        scratch((int64_t)std::max<size_t>(scratch_bytes, 256));
    fill_probe24(probe.get(), rows, cols, transposed, 0x5eed24 + (uint64_t)M * 131 + (uint64_t)K, nullptr);
    SIEVE_CUSPARSELT(cusparseLtSpMMACompress(h(), &plan.plan.v, probe.get(), theirs.get(), scratch.get(), nullptr));
    compress24(probe.get(), rows, cols, transposed, mine.get(), nullptr);
    const bool same = same_bytes(theirs.get(), mine.get(), (int64_t)bytes, nullptr);
    own_layout.emplace(key, same);
    return same;
  }

  // Runs the plan's cuSPARSELt kernel search once, on a scratch D (the search runs every candidate
  // several times and writes D each time, so never the caller's output, and beta = 0), leaving the
  // plan on the fastest kernel, whose workspace need is read again after. Synchronises the stream.
  void search_once(LtPlan& p, const void* a, const void* b, int64_t d_elems, cudaStream_t stream) {
    if (p.searched) return;
    const float alpha = 1.0f, zero = 0.0f;
    DeviceBuffer<__nv_bfloat16> scratch(d_elems);
    void* ws = workspace_for(std::max(p.workspace, size_t(32) << 20));
    SIEVE_CUSPARSELT(cusparseLtMatmulSearch(h(), &p.plan.v, &alpha, a, b, &zero, scratch.get(), scratch.get(), ws,
                                            &stream, 1));
    SIEVE_CUDA(cudaStreamSynchronize(stream));  // before the scratch output is freed
    SIEVE_CUSPARSELT(cusparseLtMatmulGetWorkspace(h(), &p.plan.v, &p.workspace));
    p.searched = true;
  }
};

SparseLt::SparseLt() : st_(new State) {
  SIEVE_CUSPARSELT(cusparseLtInit(&st_->handle.v));
  st_->workspace = DeviceBuffer<char>(int64_t(1) << 20);
}

SparseLt::~SparseLt() { cusparseLtDestroy(&st_->handle.v); }

int SparseLt::version() const {
  int v = 0;
  SIEVE_CUSPARSELT(cusparseLtGetVersion(&st_->handle.v, &v));
  return v;
}

// ---- SparseLinear

struct SparseLinear::State {
  SparseLt::State* lt;
  int64_t OC, IC;
  bool transposable;
  SparseAlgo algo;
  Compression compression;
  LtObject<cusparseLtMatDescriptor_t> a;  // W (OC, IC), row-major, 2:4
  bool has_a = false;
  Side fwd, bwd;
  bool held = false;  // (held_w, held_version) is what the compressed copies hold
  const void* held_w = nullptr;
  uint64_t held_version = 0;
  int64_t compressions = 0;
  // The compressed copies may be made on one stream and read on another: every product waits
  // for the last compression, and a compression for the last product that read the old copies.
  StreamMark compressed, read;

  const cusparseLtHandle_t* h() const { return &lt->handle.v; }

  ~State() {
    // plans hold pointers to the structured descriptor: they go first
    for (Side* s : {&fwd, &bwd}) {
      s->plans.clear();
      s->compress_plan.reset();
    }
    if (has_a) cusparseLtMatDescriptorDestroy(&a.v);
  }

  void init_side(Side& s, cusparseOperation_t op, int64_t M, int64_t K) {
    s.op = op;
    s.M = M;
    s.K = K;
    s.compress_plan = make_plan(h(), &a.v, op, M, K, kCompressN);
    size_t buffer_bytes = 0;
    SIEVE_CUSPARSELT(cusparseLtSpMMACompressedSize(h(), &s.compress_plan->plan.v, &s.compressed_bytes, &buffer_bytes));
    s.compressed = DeviceBuffer<char>((int64_t)s.compressed_bytes);
    s.compress_scratch = DeviceBuffer<char>((int64_t)std::max<size_t>(buffer_bytes, 256));
    s.own = compression == Compression::own &&
            lt->own_layout_holds(*s.compress_plan, OC, IC, op == CUSPARSE_OPERATION_TRANSPOSE, s.compressed_bytes);
  }

  void compress(Side& s, const __nv_bfloat16* w, cudaStream_t stream) {
    if (s.own)
      compress24(w, OC, IC, s.op == CUSPARSE_OPERATION_TRANSPOSE, s.compressed.get(), stream);
    else
      SIEVE_CUSPARSELT(cusparseLtSpMMACompress(h(), &s.compress_plan->plan.v, w, s.compressed.get(),
                                               s.compress_scratch.get(), stream));
  }

  LtPlan& plan_for(Side& s, int64_t N) {
    auto it = s.plans.find(N);
    if (it != s.plans.end()) return *it->second;
    auto p = make_plan(h(), &a.v, s.op, s.M, s.K, N);
    // The compressed copy is shared by the plans of every N: check that this one reads the same form.
    size_t bytes = 0, buffer_bytes = 0;
    SIEVE_CUSPARSELT(cusparseLtSpMMACompressedSize(h(), &p->plan.v, &bytes, &buffer_bytes));
    if (bytes != s.compressed_bytes)
      fail(SIEVE_E_INTERNAL, "cuSPARSELt: W (OC=%lld, IC=%lld) compresses to %zu bytes for N=%lld but %zu for N=%lld",
           (long long)OC, (long long)IC, bytes, (long long)N, s.compressed_bytes, (long long)kCompressN);
    return *s.plans.emplace(N, std::move(p)).first->second;
  }

  // D (M, N) = op(W) B^T (+ D), B (N, K): the plan of N, searched first if asked.
  void multiply(Side& s, __nv_bfloat16* d, const __nv_bfloat16* b, int64_t N, bool accumulate, cudaStream_t stream) {
    LtPlan& p = plan_for(s, N);
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    if (algo == SparseAlgo::search) lt->search_once(p, s.compressed.get(), b, s.M * N, stream);
    void* ws = lt->workspace_for(p.workspace);
    SIEVE_CUSPARSELT(cusparseLtMatmul(h(), &p.plan.v, &alpha, s.compressed.get(), b, accumulate ? &one : &zero, d, d,
                                      ws, &stream, 1));
  }
};

Compression compression_from_env() {
  constexpr Compression kModes[] = {Compression::own, Compression::cusparselt};
  return kModes[env_choice("SIEVE_CUDA_COMPRESS", {"own", "cusparselt"})];
}

SparseLinear::SparseLinear(SparseLt& lt, int64_t OC, int64_t IC, bool transposable, SparseAlgo algo,
                           Compression compression)
    : st_(new State{lt.st_.get(), OC, IC, transposable, algo, compression}) {
  SIEVE_CHECK(OC > 0 && IC > 0 && OC % 16 == 0 && IC % 16 == 0,
              "SparseLinear: W (OC=%lld, IC=%lld): cuSPARSELt's 2:4 bf16 operands need every dimension a positive "
              "multiple of 16",
              (long long)OC, (long long)IC);
  State& s = *st_;
  SIEVE_CUSPARSELT(cusparseLtStructuredDescriptorInit(s.h(), &s.a.v, OC, IC, IC, 16, CUDA_R_16BF, CUSPARSE_ORDER_ROW,
                                                      CUSPARSELT_SPARSITY_50_PERCENT));
  s.has_a = true;
  s.init_side(s.fwd, CUSPARSE_OPERATION_NON_TRANSPOSE, OC, IC);
  if (transposable) s.init_side(s.bwd, CUSPARSE_OPERATION_TRANSPOSE, IC, OC);
}

SparseLinear::~SparseLinear() = default;

int64_t SparseLinear::OC() const { return st_->OC; }
int64_t SparseLinear::IC() const { return st_->IC; }
bool SparseLinear::transposable() const { return st_->transposable; }
int64_t SparseLinear::compressions() const { return st_->compressions; }
bool SparseLinear::own_compression(bool backward) const { return (backward ? st_->bwd : st_->fwd).own; }

bool SparseLinear::prepare(const __nv_bfloat16* w, uint64_t w_version, cudaStream_t stream) {
  State& s = *st_;
  check_ptr(w, "SparseLinear: w");
  SIEVE_CHECK(aligned(w, 16), "SparseLinear: w (OC=%lld, IC=%lld) is not 16-byte aligned (cuSPARSELt)",
              (long long)s.OC, (long long)s.IC);
  if (s.held && s.held_w == w && s.held_version == w_version) return false;
  s.held = false;  // a failed compression leaves nothing trusted
  s.read.wait_on(stream);
  s.compressed.wait_on(stream);  // an earlier compression, on another stream, writes the same buffers
  s.compress(s.fwd, w, stream);
  if (s.transposable) s.compress(s.bwd, w, stream);
  s.compressed.record(stream);
  s.held = true;
  s.held_w = w;
  s.held_version = w_version;
  s.compressions++;
  return true;
}

void SparseLinear::forward(__nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* w, uint64_t w_version,
                           int64_t N, bool accumulate, cudaStream_t stream) {
  State& s = *st_;
  SIEVE_CHECK(N > 0 && N % 16 == 0,
              "SparseLinear forward: inp (N=%lld, IC=%lld): N must be a positive multiple of 16 (cuSPARSELt)",
              (long long)N, (long long)s.IC);
  check_ptr(out, "SparseLinear forward: out");
  check_ptr(inp, "SparseLinear forward: inp");
  SIEVE_CHECK(aligned(out, 16) && aligned(inp, 16),
              "SparseLinear forward: out (N=%lld, OC=%lld) and inp (N=%lld, IC=%lld) must be 16-byte aligned "
              "(cuSPARSELt)",
              (long long)N, (long long)s.OC, (long long)N, (long long)s.IC);
  prepare(w, w_version, stream);
  s.compressed.wait_on(stream);
  s.multiply(s.fwd, out, inp, N, accumulate, stream);
  s.read.record(stream);
}

void SparseLinear::backward_input(__nv_bfloat16* dinp, const __nv_bfloat16* dout, const __nv_bfloat16* w,
                                  uint64_t w_version, int64_t N, bool accumulate, cudaStream_t stream) {
  State& s = *st_;
  SIEVE_CHECK(s.transposable,
              "SparseLinear backward_input: W (OC=%lld, IC=%lld) was not declared transposable: cuSPARSELt needs "
              "its 2:4 groups along OC for dinp = dout W; use the dense GEMM",
              (long long)s.OC, (long long)s.IC);
  SIEVE_CHECK(N > 0 && N % 16 == 0,
              "SparseLinear backward_input: dout (N=%lld, OC=%lld): N must be a positive multiple of 16 (cuSPARSELt)",
              (long long)N, (long long)s.OC);
  check_ptr(dinp, "SparseLinear backward_input: dinp");
  check_ptr(dout, "SparseLinear backward_input: dout");
  SIEVE_CHECK(aligned(dinp, 16) && aligned(dout, 16),
              "SparseLinear backward_input: dinp (N=%lld, IC=%lld) and dout (N=%lld, OC=%lld) must be 16-byte aligned "
              "(cuSPARSELt)",
              (long long)N, (long long)s.IC, (long long)N, (long long)s.OC);
  prepare(w, w_version, stream);
  s.compressed.wait_on(stream);
  s.multiply(s.bwd, dinp, dout, N, accumulate, stream);
  s.read.record(stream);
}

bool SparseLinear::pattern_ok(const __nv_bfloat16* w, bool along_oc, cudaStream_t stream) const {
  const State& s = *st_;
  check_ptr(w, "SparseLinear pattern_ok: w");
  SIEVE_CHECK(aligned(w, 16), "SparseLinear pattern_ok: w (OC=%lld, IC=%lld) is not 16-byte aligned (cuSPARSELt)",
              (long long)s.OC, (long long)s.IC);
  // cuSPARSELt sets it to 1 for an invalid pattern and leaves it alone otherwise (a fresh
  // allocation that reuses freed memory reads as invalid unless cleared first)
  DeviceBuffer<int> invalid(1);
  SIEVE_CUDA(cudaMemsetAsync(invalid.get(), 0, sizeof(int), stream));
  SIEVE_CUSPARSELT(cusparseLtSpMMAPruneCheck2(s.h(), &s.a.v, 1,
                                              along_oc ? CUSPARSE_OPERATION_TRANSPOSE
                                                       : CUSPARSE_OPERATION_NON_TRANSPOSE,
                                              w, invalid.get(), stream));
  int host = -1;
  SIEVE_CUDA(cudaMemcpyAsync(&host, invalid.get(), sizeof host, cudaMemcpyDeviceToHost, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
  return host == 0;
}

int SparseLinear::algorithm(int64_t N, bool backward) const {
  const Side& side = backward ? st_->bwd : st_->fwd;
  auto it = side.plans.find(N);
  return it == side.plans.end() ? -1 : it->second->config_id();
}

// ---- SparseWeightGrad

namespace {

// dout (N, OC) as the structured operand of the products of N rows, and their plan.
struct GradOperand {
  const cusparseLtHandle_t* h;
  LtObject<cusparseLtMatDescriptor_t> a;  // dout (N, OC), row-major, 2:4 along N
  bool has_a = false;
  std::unique_ptr<LtPlan> plan;
  size_t compressed_bytes = 0, scratch_bytes = 0;
  bool own = false;  // compressed by compress24 (verified for (OC, N))

  explicit GradOperand(const cusparseLtHandle_t* handle) : h(handle) {}
  GradOperand(const GradOperand&) = delete;
  GradOperand& operator=(const GradOperand&) = delete;
  ~GradOperand() {
    plan.reset();  // it holds a pointer to the descriptor
    if (has_a) cusparseLtMatDescriptorDestroy(&a.v);
  }
};

}  // namespace

struct SparseWeightGrad::State {
  SparseLt::State* lt;
  int64_t OC, IC;
  SparseAlgo algo;
  Compression compression;
  std::map<int64_t, std::unique_ptr<GradOperand>> by_n;

  GradOperand& operand_for(int64_t N) {
    auto it = by_n.find(N);
    if (it != by_n.end()) return *it->second;
    auto g = std::make_unique<GradOperand>(lt->h());
    SIEVE_CUSPARSELT(cusparseLtStructuredDescriptorInit(lt->h(), &g->a.v, N, OC, OC, 16, CUDA_R_16BF,
                                                        CUSPARSE_ORDER_ROW, CUSPARSELT_SPARSITY_50_PERCENT));
    g->has_a = true;
    g->plan = make_plan(lt->h(), &g->a.v, CUSPARSE_OPERATION_TRANSPOSE, OC, N, IC, Layout::weight_grad);
    SIEVE_CUSPARSELT(cusparseLtSpMMACompressedSize(lt->h(), &g->plan->plan.v, &g->compressed_bytes, &g->scratch_bytes));
    g->own = compression == Compression::own && lt->own_layout_holds(*g->plan, N, OC, true, g->compressed_bytes);
    return *by_n.emplace(N, std::move(g)).first->second;
  }
};

SparseWeightGrad::SparseWeightGrad(SparseLt& lt, int64_t OC, int64_t IC, SparseAlgo algo, Compression compression)
    : st_(new State{lt.st_.get(), OC, IC, algo, compression, {}}) {
  SIEVE_CHECK(OC > 0 && IC > 0 && OC % 16 == 0 && IC % 16 == 0,
              "SparseWeightGrad: dW (OC=%lld, IC=%lld): cuSPARSELt's 2:4 bf16 products need every dimension a "
              "positive multiple of 16",
              (long long)OC, (long long)IC);
}

SparseWeightGrad::~SparseWeightGrad() = default;

void SparseWeightGrad::multiply(__nv_bfloat16* dw, const __nv_bfloat16* dout, const __nv_bfloat16* inp, int64_t N,
                                cudaStream_t stream) {
  State& s = *st_;
  SIEVE_CHECK(N > 0 && N % 16 == 0,
              "SparseWeightGrad: dout (N=%lld, OC=%lld): N must be a positive multiple of 16 (cuSPARSELt)",
              (long long)N, (long long)s.OC);
  check_ptr(dw, "SparseWeightGrad: dw");
  check_ptr(dout, "SparseWeightGrad: dout");
  check_ptr(inp, "SparseWeightGrad: inp");
  SIEVE_CHECK(aligned(dw, 16) && aligned(dout, 16) && aligned(inp, 16),
              "SparseWeightGrad: dw (OC=%lld, IC=%lld), dout (N=%lld, OC=%lld) and inp (N=%lld, IC=%lld) must be "
              "16-byte aligned (cuSPARSELt)",
              (long long)s.OC, (long long)s.IC, (long long)N, (long long)s.OC, (long long)N, (long long)s.IC);
  GradOperand& g = s.operand_for(N);
  void* compressed = at_least(s.lt->operand, g.compressed_bytes);
  if (g.own) {
    compress24(dout, N, s.OC, true, compressed, stream);
  } else {
    void* scratch = at_least(s.lt->operand_scratch, std::max<size_t>(g.scratch_bytes, 256));
    SIEVE_CUSPARSELT(cusparseLtSpMMACompress(s.lt->h(), &g.plan->plan.v, dout, compressed, scratch, stream));
  }
  if (s.algo == SparseAlgo::search) s.lt->search_once(*g.plan, compressed, inp, s.OC * s.IC, stream);
  const float alpha = 1.0f, zero = 0.0f;
  void* ws = s.lt->workspace_for(g.plan->workspace);
  SIEVE_CUSPARSELT(
      cusparseLtMatmul(s.lt->h(), &g.plan->plan.v, &alpha, compressed, inp, &zero, dw, dw, ws, &stream, 1));
}

bool SparseWeightGrad::own_compression(int64_t N) const {
  auto it = st_->by_n.find(N);
  return it != st_->by_n.end() && it->second->own;
}

int SparseWeightGrad::algorithm(int64_t N) const {
  auto it = st_->by_n.find(N);
  return it == st_->by_n.end() ? -1 : it->second->plan->config_id();
}

}  // namespace sieve::cuda
