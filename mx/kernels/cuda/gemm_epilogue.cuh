// The epilogue the MX products share: two neighbouring outputs of one row, plus the bias, stored
// as float32 or bfloat16 (rounded to nearest-even), in one 8- or 4-byte store where the row and
// the buffer allow it.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace mx::cuda {

// P: m, n, bias (null or n floats), d, out_bf16, pair_stores (n even and d 8-byte aligned).
template <class Params>
__device__ __forceinline__ void store_pair(const Params& P, int64_t row, int64_t col, float v0,
                                           float v1) {
  if (row >= P.m || col >= P.n) return;
  const bool second = col + 1 < P.n;
  if (P.bias) {
    v0 += P.bias[col];
    if (second) v1 += P.bias[col + 1];
  }
  const int64_t at = row * P.n + col;
  if (P.out_bf16) {
    __nv_bfloat16* d = static_cast<__nv_bfloat16*>(P.d) + at;
    if (second && P.pair_stores) {
      *reinterpret_cast<__nv_bfloat162*>(d) = __floats2bfloat162_rn(v0, v1);
    } else {
      d[0] = __float2bfloat16_rn(v0);
      if (second) d[1] = __float2bfloat16_rn(v1);
    }
  } else {
    float* d = static_cast<float*>(P.d) + at;
    if (second && P.pair_stores) {
      *reinterpret_cast<float2*>(d) = make_float2(v0, v1);
    } else {
      d[0] = v0;
      if (second) d[1] = v1;
    }
  }
}

}  // namespace mx::cuda
