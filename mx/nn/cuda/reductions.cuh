// Warp and block reductions in fixed trees, so that sums and maxima repeat bit for bit on one
// GPU: lanes combine by butterfly shuffles, then a block's warps through shared memory, the
// first warp over their results.
#pragma once

#include <cuda_runtime.h>

#include <cmath>

namespace mx::nn::cuda {

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}

// Every thread of the block gets the result. `shared` holds 32 floats; the two barriers make
// the call safe to repeat with the same `shared`.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  float r = lane < warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? warp_max(r) : warp_sum(r);
  __syncthreads();
  return r;
}

}  // namespace mx::nn::cuda
