// quant.cu — weight-only quantization on the GPU (quant.cuh).
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

__global__ void quantize_rtn_kernel1(uint8_t* codes, float* scales, uint8_t* zeros, const float* w, const float* mask,
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

__global__ void dequantize_kernel1(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros,
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
  quantize_rtn_kernel1<<<grid_for(groups * 32, kThreads), kThreads, 0, stream>>>(codes, scales, zeros, w, mask, groups,
                                                                                 grid.group, device_grid(grid));
  SIEVE_LAUNCHED();
}

void dequantize(float* out, const uint8_t* codes, const float* scales, const uint8_t* zeros, int64_t rows, int64_t cols,
                int64_t group, cudaStream_t stream) {
  const int64_t n = rows * cols;
  dequantize_kernel1<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, codes, scales, zeros, n, group);
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

}  // namespace sieve::cuda
