// compress24.cu — cuSPARSELt's sm_90 compressed 2:4 form, written directly (compress24.cuh).
#include "compress24.cuh"

#include "core/rng.h"
#include "device_buffer.cuh"

namespace sieve::cuda {

namespace {

using bf16 = __nv_bfloat16;

// A block compresses 64 rows x 128 of K (four metadata tiles) through shared memory, so that
// both orientations read and write whole 16-byte chunks of consecutive addresses.
constexpr int kRows = 64, kCols = 128, kPad = 8, kThreads = 128;

// The kept positions of a group whose nonzeros are the set bits of nz: see compress24.cuh.
__device__ __forceinline__ void kept_pair(unsigned nz, int& i0, int& i1) {
  i0 = -1;
  i1 = -1;
  for (int i = 0; i < 4; i++)
    if (nz >> i & 1) {
      if (i0 < 0) i0 = i;
      else if (i1 < 0) i1 = i;
    }
  for (int i = 0; i < 4 && i1 < 0; i++)
    if (!(nz >> i & 1)) {
      if (i0 < 0) i0 = i;
      else if (i != i0) i1 = i;
    }
  if (i0 > i1) {
    const int t = i0;
    i0 = i1;
    i1 = t;
  }
}

// op(A) (M, K) of W (OC, IC): W itself (M = OC) or, when kTransposed, W^T (M = IC).
template <bool kTransposed>
__global__ void __launch_bounds__(kThreads)
    compress24_kernel(const bf16* __restrict__ w, int64_t M, int64_t K, bf16* __restrict__ values,
                      uint8_t* __restrict__ meta) {
  __shared__ alignas(16) bf16 a[kRows][kCols + kPad];      // op(A)'s tile, [m][k]
  __shared__ alignas(16) bf16 v[kRows][kCols / 2 + kPad];  // its kept values, [m][k/2]
  const int64_t m0 = (int64_t)blockIdx.y * kRows, k0 = (int64_t)blockIdx.x * kCols;
  const int t = threadIdx.x;
  if (!kTransposed) {  // rows m of W, 16 chunks of 8 along K each
    for (int i = t; i < kRows * (kCols / 8); i += kThreads) {
      const int r = i / (kCols / 8), c = i % (kCols / 8) * 8;
      if (k0 + c < K) *reinterpret_cast<uint4*>(&a[r][c]) = *reinterpret_cast<const uint4*>(&w[(m0 + r) * K + k0 + c]);
    }
  } else {  // rows k of W (OC = K), 8 chunks of 8 along M each, transposed into a
    for (int i = t; i < kCols * (kRows / 8); i += kThreads) {
      const int kk = i / (kRows / 8), c = i % (kRows / 8) * 8;
      if (k0 + kk >= K) continue;
      const uint4 x = *reinterpret_cast<const uint4*>(&w[(k0 + kk) * M + m0 + c]);
      const bf16* e = reinterpret_cast<const bf16*>(&x);
      for (int j = 0; j < 8; j++) a[c + j][kk] = e[j];
    }
  }
  __syncthreads();

  // A thread: rows r and r + 8 of one metadata tile, whose 16 nibbles fill 8 consecutive bytes.
  const int m012 = t & 7, m45 = (t >> 3) & 3, tile = t >> 5;
  if (k0 + tile * 32 < K) {
    uint64_t word = 0;
    for (int half = 0; half < 2; half++) {
      const int r = m45 * 16 + half * 8 + m012;
      for (int g = 0; g < 8; g++) {
        const bf16* x = &a[r][tile * 32 + g * 4];
        unsigned nz = 0;
        for (int i = 0; i < 4; i++)
          if (__bfloat162float(x[i]) != 0.0f) nz |= 1u << i;
        int i0, i1;
        kept_pair(nz, i0, i1);
        v[r][tile * 16 + g * 2] = x[i0];
        v[r][tile * 16 + g * 2 + 1] = x[i1];
        const int byte = (g >> 2) + 2 * (g & 3);
        word |= (uint64_t)(i0 | i1 << 2) << (8 * byte + 4 * half);
      }
    }
    const int64_t tile_index = (m0 / kRows) * (K / 32) + k0 / 32 + tile;
    *reinterpret_cast<uint64_t*>(meta + tile_index * 256 + (m012 << 3 | m45 << 6)) = word;
  }
  __syncthreads();

  const int64_t half_k = K / 2, kc0 = k0 / 2;
  if (!kTransposed) {  // values (M, K/2): rows m, 8 chunks of 8 each
    for (int i = t; i < kRows * (kCols / 16); i += kThreads) {
      const int r = i / (kCols / 16), c = i % (kCols / 16) * 8;
      if (kc0 + c < half_k)
        *reinterpret_cast<uint4*>(&values[(m0 + r) * half_k + kc0 + c]) = *reinterpret_cast<const uint4*>(&v[r][c]);
    }
  } else {  // values (K/2, M): rows k/2, 8 chunks of 8 along M each
    for (int i = t; i < (kCols / 2) * (kRows / 8); i += kThreads) {
      const int kc = i / (kRows / 8), c = i % (kRows / 8) * 8;
      if (kc0 + kc >= half_k) continue;
      uint4 x;
      bf16* e = reinterpret_cast<bf16*>(&x);
      for (int j = 0; j < 8; j++) e[j] = v[c + j][kc];
      *reinterpret_cast<uint4*>(&values[(kc0 + kc) * M + m0 + c]) = x;
    }
  }
}

// One thread per group of op(A) (M, K): two of its four elements kept, at one of the six pairs.
__global__ void fill_probe24_kernel(bf16* w, int64_t OC, int64_t IC, bool transposed, uint64_t seed) {
  const int64_t K = transposed ? OC : IC, groups = OC * IC / 4;
  const int pairs[6] = {0x3, 0x5, 0x9, 0x6, 0xA, 0xC};
  for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < groups; g += (int64_t)gridDim.x * blockDim.x) {
    const int64_t m = g / (K / 4), k = g % (K / 4) * 4;
    const uint64_t h = splitmix64_mix(seed ^ splitmix64_mix((uint64_t)g));
    const int keep = pairs[h % 6];
    for (int i = 0; i < 4; i++) {
      // nonzero and finite: magnitudes 2^-7 to 2, random mantissa and sign
      const unsigned short bits = (unsigned short)(0x3C00 | (h >> (8 + 11 * i) & 0x3FF) | (h >> (52 + i) & 1) << 15);
      const bf16 x = keep >> i & 1 ? __ushort_as_bfloat16(bits) : __float2bfloat16(0.0f);
      w[transposed ? (k + i) * IC + m : m * IC + k + i] = x;
    }
  }
}

__global__ void differ_kernel(const uint32_t* a, const uint32_t* b, int64_t n, int* differ) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    if (a[i] != b[i]) *differ = 1;
}

}  // namespace

bool compress24_fits(int64_t M, int64_t K) { return M > 0 && K > 0 && M % 64 == 0 && K % 32 == 0; }

void compress24(const bf16* w, int64_t OC, int64_t IC, bool transposed, void* out, cudaStream_t stream) {
  const int64_t M = transposed ? IC : OC, K = transposed ? OC : IC;
  SIEVE_CHECK(compress24_fits(M, K), "compress24: op(A) (M=%lld, K=%lld) needs M a multiple of 64 and K of 32",
              (long long)M, (long long)K);
  SIEVE_CHECK(aligned(w, 16) && aligned(out, 16), "compress24: w and out must be 16-byte aligned");
  bf16* values = static_cast<bf16*>(out);
  uint8_t* meta = static_cast<uint8_t*>(out) + M * K;  // after M*K/2 bf16 values
  const dim3 grid((unsigned)((K + kCols - 1) / kCols), (unsigned)(M / kRows));
  if (transposed) compress24_kernel<true><<<grid, kThreads, 0, stream>>>(w, M, K, values, meta);
  else compress24_kernel<false><<<grid, kThreads, 0, stream>>>(w, M, K, values, meta);
  SIEVE_LAUNCHED();
}

void fill_probe24(bf16* w, int64_t OC, int64_t IC, bool transposed, uint64_t seed, cudaStream_t stream) {
  SIEVE_CHECK(OC % 4 == 0 && IC % 4 == 0, "fill_probe24: W (OC=%lld, IC=%lld) needs both a multiple of 4",
              (long long)OC, (long long)IC);
  fill_probe24_kernel<<<grid_for(OC * IC / 4, 256), 256, 0, stream>>>(w, OC, IC, transposed, seed);
  SIEVE_LAUNCHED();
}

bool same_bytes(const void* a, const void* b, int64_t bytes, cudaStream_t stream) {
  SIEVE_CHECK(bytes % 4 == 0 && aligned(a, 4) && aligned(b, 4), "same_bytes: %lld bytes, not whole aligned words",
              (long long)bytes);
  DeviceBuffer<int> differ(1);
  SIEVE_CUDA(cudaMemsetAsync(differ.get(), 0, sizeof(int), stream));
  differ_kernel<<<grid_for(bytes / 4, 256), 256, 0, stream>>>(static_cast<const uint32_t*>(a),
                                                              static_cast<const uint32_t*>(b), bytes / 4, differ.get());
  SIEVE_LAUNCHED();
  int host = 1;
  SIEVE_CUDA(cudaMemcpyAsync(&host, differ.get(), sizeof host, cudaMemcpyDeviceToHost, stream));
  SIEVE_CUDA(cudaStreamSynchronize(stream));
  return host == 0;
}

}  // namespace sieve::cuda
