// Reading and writing one activation element as float32, whether the buffer holds float32 or
// bfloat16 (written rounded to nearest-even): what the element-wise and attention kernels share.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mx::nn::cuda {

__device__ __forceinline__ float ld(const float* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ float ld(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(float* p, int64_t i, float v) {
  p[i] = v;
}
__device__ __forceinline__ void st(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

}  // namespace mx::nn::cuda
