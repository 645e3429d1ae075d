// quant.cu — weight-only quantization on the GPU (quant.cuh).
#include <algorithm>

#include "device_buffer.cuh"
#include "quant.cuh"

namespace sieve::cuda {

namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;

struct DeviceGrid {
  int bits, maxq;
  bool symmetric;
};

DeviceGrid device_grid(const QuantGrid& g) { return {g.bits, g.maxq(), g.symmetric}; }

// std::clamp(x, 0, maxq) as the CPU evaluates it.
__device__ __forceinline__ float clamp_q(float x, int maxq) {
  const float hi = (float)maxq;
  return x < 0.0f ? 0.0f : (hi < x ? hi : x);
}

// core/quant.cc's quant_group_params for the group whose kept values this warp's lanes saw:
// each lane passes the min / max of its share (lo, hi from +0; sym: hi = max |w|), and every lane
// gets the scale and zero point.
__device__ __forceinline__ void warp_group_params(float lo, float hi, const DeviceGrid& g, float* scale,
                                                  uint8_t* zero) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float l = __shfl_xor_sync(0xffffffffu, lo, o), h = __shfl_xor_sync(0xffffffffu, hi, o);
    lo = l < lo ? l : lo;
    hi = h > hi ? h : hi;
  }
  if (g.symmetric) {
    const float s = __fdiv_rn(hi, (float)((1 << (g.bits - 1)) - 1));
    *scale = s > 0.0f ? s : 1.0f;
    *zero = (uint8_t)(1 << (g.bits - 1));
    return;
  }
  float s = __fdiv_rn(__fsub_rn(hi, lo), (float)g.maxq);
  if (!(s > 0.0f)) s = 1.0f;
  *scale = s;
  *zero = (uint8_t)clamp_q(rintf(__fdiv_rn(-lo, s)), g.maxq);
}

// One kept value into a lane's share, as quant_group_params' loop takes it.
__device__ __forceinline__ void take(float v, bool symmetric, float& lo, float& hi) {
  if (symmetric) {
    const float a = fabsf(v);
    hi = a > hi ? a : hi;
  } else {
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
}

// core/quant.cc's quant_code.
__device__ __forceinline__ uint8_t quant_code(float w, float scale, uint8_t zero, int maxq) {
  return (uint8_t)clamp_q(__fadd_rn(rintf(__fdiv_rn(w, scale)), (float)zero), maxq);
}

__global__ void quantize_rtn_kernel(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask,
                                     int64_t groups, int64_t group, DeviceGrid g) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = (int64_t)gridDim.x * kWarps;
  for (int64_t k = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5); k < groups; k += warps) {
    // groups are contiguous: group k of the flat (rows, cols) array starts at k * group
    const int64_t off = k * group;
    float lo = 0.0f, hi = 0.0f;  // 0 always on the grid
    for (int64_t i = lane; i < group; i += 32)
      if (!mask || mask[off + i] != 0.0f) take(w[off + i], g.symmetric, lo, hi);
    float scale;
    uint8_t zero;
    warp_group_params(lo, hi, g, &scale, &zero);
    if (lane == 0) scales[k] = scale, zeros[k] = zero;
    for (int64_t i = lane; i < group; i += 32)
      codes[off + i] = mask && mask[off + i] == 0.0f ? zero : quant_code(w[off + i], scale, zero, g.maxq);
  }
}

__global__ void dequantize_kernel(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros,
                                   int64_t n, int64_t group) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t k = i / group;  // rows are whole groups, so the flat group index
    out[i] = __fmul_rn(__fsub_rn((float)codes[i], (float)zeros[k]), scales[k]);
  }
}

}  // namespace

void quantize_rtn(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                  int64_t cols, const QuantGrid& grid, cudaStream_t stream) {
  const int64_t groups = rows * (cols / grid.group);
  quantize_rtn_kernel<<<grid_for(groups * 32, kThreads), kThreads, 0, stream>>>(codes, scales, zeros, w, mask, groups,
                                                                                 grid.group, device_grid(grid));
  SIEVE_LAUNCHED();
}

void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows, int64_t cols,
                int64_t group, cudaStream_t stream) {
  const int64_t n = rows * cols;
  dequantize_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, codes, scales, zeros, n, group);
  SIEVE_LAUNCHED();
}

// ---- GPTQ's rows

namespace {

constexpr int kGptqMaxRows = 8;

__global__ void __launch_bounds__(kThreads)
    gptq_kernel(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, GptqDevicePlan plan,
                 int64_t rows, int64_t group, int rows_per_block, DeviceGrid g, double* scratch) {
  extern __shared__ double shared_x[];
  __shared__ double err[kGptqMaxRows];
  __shared__ float sc[kGptqMaxRows];
  __shared__ uint8_t zp[kGptqMaxRows];
  __shared__ bool update[kGptqMaxRows];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t n = plan.n, G = n / group, r0 = (int64_t)blockIdx.x * rows_per_block;
  const int nr = (int)min((int64_t)rows_per_block, rows - r0);
  double* x = scratch ? scratch + r0 * n : shared_x;  // x[r n + j]: row r0 + r at step j
  auto kept = [&](int r, int64_t c) { return !plan.dead[c] && (!mask || mask[(r0 + r) * n + c] != 0.0f); };
  // the rows in quantization order, dead and masked weights as 0
  for (int64_t i = tid; i < nr * n; i += blockDim.x) {
    const int r = (int)(i / n);
    const int64_t c = plan.perm[i - r * n];
    x[i] = kept(r, c) ? (double)w[(r0 + r) * n + c] : 0.0;
  }
  __syncthreads();
  for (int64_t j = 0; j < n; j++) {
    const int64_t c = plan.perm[j], grp = c / group;
    // in order (perm is the identity), a group's parameters come from its current weights
    if (!plan.static_groups && c % group == 0) {
      for (int r = warp; r < nr; r += kWarps) {
        float lo = 0.0f, hi = 0.0f;
        for (int64_t i = lane; i < group; i += 32)
          if (kept(r, c + i)) take((float)x[r * n + c + i], g.symmetric, lo, hi);
        float scale;
        uint8_t zero;
        warp_group_params(lo, hi, g, &scale, &zero);
        if (lane == 0) {
          sc[r] = scale, zp[r] = zero;
          scales[(r0 + r) * G + grp] = scale, zeros[(r0 + r) * G + grp] = zero;
        }
      }
      __syncthreads();
    }
    // each row's code and scaled error (cpu/quant.cc's expressions)
    if (tid < nr) {
      const int r = tid;
      const float scale = plan.static_groups ? scales[(r0 + r) * G + grp] : sc[r];
      const uint8_t zero = plan.static_groups ? zeros[(r0 + r) * G + grp] : zp[r];
      update[r] = kept(r, c);
      if (!update[r]) {
        codes[(r0 + r) * n + c] = zero;
      } else {
        const double xj = x[r * n + j];
        const uint8_t code = quant_code((float)xj, scale, zero, g.maxq);
        codes[(r0 + r) * n + c] = code;
        const double q = (double)__fmul_rn(__fsub_rn((float)code, (float)zero), scale);  // as dequantize gives it
        err[r] = __ddiv_rn(__dsub_rn(xj, q), plan.U[j * n + j]);
      }
    }
    __syncthreads();
    const double* u = plan.U + j * n;
    for (int64_t k = j + 1 + tid; k < n; k += blockDim.x) {
      const double uk = u[k];
      for (int r = 0; r < nr; r++)
        if (update[r]) x[r * n + k] = __dsub_rn(x[r * n + k], __dmul_rn(err[r], uk));
    }
    __syncthreads();
  }
}

}  // namespace

int64_t gptq_shared_limit() {
  int device = 0, optin = 0;
  SIEVE_CUDA(cudaGetDevice(&device));
  SIEVE_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  cudaFuncAttributes attr{};
  SIEVE_CUDA(cudaFuncGetAttributes(&attr, gptq_kernel));
  return (int64_t)optin - (int64_t)attr.sharedSizeBytes;
}

int64_t gptq_scratch(int64_t rows, int64_t n, int64_t shared_limit) {
  return shared_limit >= (int64_t)sizeof(double) * n ? 0 : rows * n;
}

void gptq(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqDevicePlan& plan,
          int64_t rows, const QuantGrid& grid, double* scratch, int64_t shared_limit, cudaStream_t stream) {
  int device = 0, sms = 0;
  SIEVE_CUDA(cudaGetDevice(&device));
  SIEVE_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  // enough rows per block to share U's reads, few enough that every SM gets a block
  int64_t per_block = std::min<int64_t>(kGptqMaxRows, std::max<int64_t>(1, (rows + sms - 1) / sms));
  const int64_t row_bytes = (int64_t)sizeof(double) * plan.n;
  const bool in_shared = gptq_scratch(rows, plan.n, shared_limit) == 0;
  if (in_shared) per_block = std::min(per_block, shared_limit / row_bytes);
  const size_t bytes = in_shared ? (size_t)(per_block * row_bytes) : 0;
  // always the device's whole limit, never this call's size: calls from several host threads (the
  // quantize stage runs layers concurrently) must not lower it under another's launch
  SIEVE_CUDA(cudaFuncSetAttribute(gptq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)gptq_shared_limit()));
  const unsigned blocks = (unsigned)((rows + per_block - 1) / per_block);
  gptq_kernel<<<blocks, kThreads, bytes, stream>>>(codes, scales, zeros, w, mask, plan, rows, grid.group,
                                                     (int)per_block, device_grid(grid), in_shared ? nullptr : scratch);
  SIEVE_LAUNCHED();
}

// ---- the Backend members: host arrays through device copies on the legacy default stream
// (cudaMemcpy waits for the kernels before it)

namespace {

template <class T>
DeviceBuffer<T> upload(const T* host, int64_t n) {
  DeviceBuffer<T> d(n);
  SIEVE_CUDA(cudaMemcpy(d.get(), host, sizeof(T) * (size_t)n, cudaMemcpyHostToDevice));
  return d;
}

template <class T>
void download(T* host, const DeviceBuffer<T>& d) {
  SIEVE_CUDA(cudaMemcpy(host, d.get(), sizeof(T) * (size_t)d.size(), cudaMemcpyDeviceToHost));
}

}  // namespace

void quantize_rtn_host(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, int64_t rows,
                       int64_t cols, const QuantGrid& grid) {
  const int64_t n = rows * cols, groups = rows * (cols / grid.group);
  const DeviceBuffer<float> dw = upload(w, n), dmask = mask ? upload(mask, n) : DeviceBuffer<float>();
  DeviceBuffer<uint8_t> dcodes(n), dzeros(groups);
  DeviceBuffer<float> dscales(groups);
  quantize_rtn(dcodes.get(), dscales.get(), dzeros.get(), dw.get(), dmask.get(), rows, cols, grid, 0);
  download(codes, dcodes), download(scales, dscales), download(zeros, dzeros);
}

void dequantize_host(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows,
                     int64_t cols, int64_t group) {
  const int64_t n = rows * cols, groups = rows * (cols / group);
  const DeviceBuffer<uint8_t> dcodes = upload(codes, n), dzeros = upload(zeros, groups);
  const DeviceBuffer<float> dscales = upload(scales, groups);
  DeviceBuffer<float> dout(n);
  dequantize(dout.get(), dcodes.get(), dscales.get(), dzeros.get(), rows, cols, group, 0);
  download(out, dout);
}

void gptq_host(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask, const GptqPlan& plan,
               int64_t rows, const QuantGrid& grid) {
  const int64_t n = plan.n, groups = rows * (n / grid.group);
  const DeviceBuffer<float> dw = upload(w, rows * n), dmask = mask ? upload(mask, rows * n) : DeviceBuffer<float>();
  const DeviceBuffer<double> dU = upload(plan.U.data(), n * n);
  const DeviceBuffer<int64_t> dperm = upload(plan.perm.data(), n);
  const DeviceBuffer<uint8_t> ddead = upload(reinterpret_cast<const uint8_t*>(plan.dead.data()), n);
  // static groups arrive set; otherwise the kernel writes them
  DeviceBuffer<float> dscales = plan.static_groups ? upload(scales, groups) : DeviceBuffer<float>(groups);
  DeviceBuffer<uint8_t> dzeros = plan.static_groups ? upload(zeros, groups) : DeviceBuffer<uint8_t>(groups);
  DeviceBuffer<uint8_t> dcodes(rows * n);
  const int64_t limit = gptq_shared_limit();
  DeviceBuffer<double> scratch(gptq_scratch(rows, n, limit));
  gptq(dcodes.get(), dscales.get(), dzeros.get(), dw.get(), dmask.get(),
       GptqDevicePlan{dU.get(), dperm.get(), ddead.get(), n, plan.static_groups}, rows, grid, scratch.get(), limit, 0);
  download(codes, dcodes);
  if (!plan.static_groups) download(scales, dscales), download(zeros, dzeros);
}

}  // namespace sieve::cuda
