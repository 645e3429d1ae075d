// reduce.cuh — the block reductions of the CUDA kernels: a fixed tree per block (shuffles
// within each warp, then one warp over the warps' sums), so a sum's bits depend only on the
// block size and the values, never on scheduling.
#pragma once

namespace sieve::cuda {

template <class T>
__device__ __forceinline__ T warp_sum(T x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_down_sync(0xffffffffu, x, o);
  return x;
}

// The block's sum of x, valid in thread 0. Every thread of the block calls it; blockDim.x is a
// multiple of 32, at most 1024.
template <class T>
__device__ __forceinline__ T block_sum(T x) {
  __shared__ T partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  x = warp_sum(x);
  if (lane == 0) partial[warp] = x;
  __syncthreads();
  x = 0;
  if (warp == 0) {
    if (lane < (int)(blockDim.x >> 5)) x = partial[lane];
    x = warp_sum(x);
  }
  __syncthreads();  // partial may be reused by a second call
  return x;
}

}  // namespace sieve::cuda
