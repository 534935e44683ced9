// The scalar device codec of the CUDA kernels: the reference's stochastic dither, bfloat16 and
// float16 conversions, loads and stores of one value, the element encoder of one lane (the CPU fast
// path's integer recipe), and the helpers of the asymmetric offset. Shared by the quantizers and by
// kernels that cast values in their own tiles (fused attention). Every float operation is an
// explicit _rn intrinsic, so the bits do not depend on -fmad.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// The reference's stochastic dither (stochastic_dither, mx/core/rounding.h), with the key of
// the window of pairs below 2^32 (every value of a tensor under 2^33 values) taken from the spec
// instead of hashed again for each value: the window key's 64-bit hash costs more instructions
// than the pair's own, and casts that draw a dither per value are bound by instructions. (Host
// code calls it too: the tests hold it to the reference past the first window.)
__host__ __device__ __forceinline__ uint32_t window_key_at(uint64_t key, uint32_t window0_key,
                                                           uint64_t window) {
  return window == 0 ? window0_key : stochastic_window_key(key, window);
}
__host__ __device__ __forceinline__ uint32_t dither_at(uint64_t key, uint32_t window0_key,
                                                       int64_t index) {
  const uint64_t pair = uint64_t(index) >> 1;
  return dither_half(
      stochastic_pair_bits(window_key_at(key, window0_key, pair >> 32), uint32_t(pair)),
      uint64_t(index));
}
__device__ __forceinline__ uint32_t dither_at(const DevSpec& s, int64_t index) {
  return dither_at(s.key, s.window0_key, index);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) {
  const uint32_t bits = __float_as_uint(v);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t((bits + rounding) >> 16);
}
__device__ __forceinline__ float fp16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t em = uint32_t(h & 0x7FFFu) << 13;
  const float scaled = __fmul_rn(__uint_as_float(em), 0x1p112f);
  const uint32_t special = 0x7F800000u | em;
  const uint32_t mag = (h & 0x7C00u) == 0x7C00u ? special : __float_as_uint(scaled);
  return __uint_as_float(sign | mag);
}
__device__ __forceinline__ float load_value(const void* in, int dtype, int64_t i) {
  if (dtype == int(DType::kF32)) return static_cast<const float*>(in)[i];
  const uint16_t h = static_cast<const uint16_t*>(in)[i];
  return dtype == int(DType::kBF16) ? bf16_bits_to_f32(h) : fp16_bits_to_f32(h);
}

__device__ __forceinline__ void store_out(void* out, int dtype, int64_t i, float v) {
  if (dtype == int(DType::kF32)) {
    static_cast<float*>(out)[i] = v;
  } else {
    static_cast<uint16_t*>(out)[i] = f32_to_bf16_bits(v);
  }
}

__device__ __forceinline__ float flush_sub(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x7FFFFFFFu) < 0x800000u ? __uint_as_float(b & 0x80000000u) : v;
}

// The asymmetric offset's min and max follow the CPU's std::min / std::max over the block in
// slot order: on equal values (+0 and -0) the earlier slot wins. `a` is the earlier operand.
__device__ __forceinline__ float min_first(float a, float b) {
  return b < a ? b : a;
}
__device__ __forceinline__ float max_first(float a, float b) {
  return a < b ? b : a;
}

// Combines lo/hi with the partner lane `lane ^ o` of a butterfly over aligned lane groups (the
// lower lane holds the earlier slots).
__device__ __forceinline__ void minmax_xor(float& lo, float& hi, int o) {
  const float olo = __shfl_xor_sync(0xFFFFFFFFu, lo, o);
  const float ohi = __shfl_xor_sync(0xFFFFFFFFu, hi, o);
  if (threadIdx.x & o) {
    lo = min_first(olo, lo);
    hi = max_first(ohi, hi);
  } else {
    lo = min_first(lo, olo);
    hi = max_first(hi, ohi);
  }
}

// The asymmetric offset of a block spread over G lanes of N values each (every lane of the warp
// calls this: shuffles). lo and hi are this lane's min and max over its real slots. Shifts the
// real slots of v by the offset and replaces amax by the shifted block's amax; a NaN block (its
// values unused) keeps its amax and gets offset 0x7FC0.
template <int N>
__device__ __forceinline__ void shift_by_offset(float* v, uint32_t mask, int G, float lo, float hi,
                                                uint32_t& amax, BlockState& st) {
  for (int o = 1; o < G; o <<= 1) minmax_xor(lo, hi, o);
  if (lo > hi) lo = hi = 0.0f;
  const uint16_t offset = f32_to_bf16_bits(__fadd_rn(__fmul_rn(hi, 0.5f), __fmul_rn(lo, 0.5f)));
  const float m = bf16_bits_to_f32(offset);
  uint32_t shifted = 0;
#pragma unroll
  for (int j = 0; j < N; ++j) {
    if ((mask >> j) & 1u) v[j] = __fsub_rn(v[j], m);
    shifted = max(shifted, __float_as_uint(v[j]) & 0x7FFFFFFFu);
  }
  for (int o = 1; o < G; o <<= 1) shifted = max(shifted, __shfl_xor_sync(0xFFFFFFFFu, shifted, o));
  if (st.nan_block) {
    st.offset = 0x7FC0;
  } else {
    st.offset = offset;
    st.m = m;
    amax = shifted;
  }
}

template <Rounding kMode, bool kInteger>
__device__ __forceinline__ uint32_t encode_lane(const DevFormat& p, uint32_t y, uint32_t dither) {
  const uint32_t sign = y >> 31;
  const int32_t field = int32_t((y >> 23) & 0xFFu);
  const uint32_t sig = (y & 0x7FFFFFu) | 0x800000u;
  const int32_t ey = field - 127;
  int32_t shift = kInteger ? 23 + p.emin - ey : 23 - p.man_bits + max(0, p.emin - ey);
  const bool huge = shift < 1;
  shift = min(max(shift, 1), 63);
  const int32_t s31 = min(shift, 31);
  const uint32_t kept = sig >> s31;
  const uint32_t rest = sig & ((1u << s31) - 1u);
  uint32_t up = 0;
  if constexpr (kMode == Rounding::kNearestEven) {
    const uint32_t half = 1u << min(shift - 1, 30);
    up = (rest > half || (rest == half && (kept & 1u))) ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kNearestAway) {
    const uint32_t half = 1u << min(shift - 1, 30);
    up = rest >= half ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kStochastic) {
    const uint32_t low = rest << max(16 - shift, 0);
    const uint32_t high = sig >> min(max(shift - 16, 0), 31);
    const uint32_t fraction16 = shift <= 16 ? low : (shift <= 31 ? rest >> (shift - 16) : high);
    up = stochastic_rounds_up(fraction16, dither) ? 1u : 0u;
  }
  const uint32_t n = kept + up;
  uint32_t magnitude = 0;
  if constexpr (kInteger) {
    magnitude = min(n, p.max_code);
  } else {
    magnitude = (uint32_t(max(ey - p.emin, 0)) << p.man_bits) + n;
    magnitude = min(magnitude, p.max_code);
  }
  magnitude = huge ? p.max_code : magnitude;
  magnitude = field == 0 ? 0u : magnitude;
  if constexpr (kInteger) {
    const uint32_t mask = (1u << p.bits) - 1u;
    return (sign ? 0u - magnitude : magnitude) & mask;
  } else {
    return magnitude | (sign << (p.bits - 1));
  }
}

// encode_mag rounds a = |y| (y = v * 2^-e) to the element format with a "magic number" add:
// with E the exponent field of a clamped below at the smallest normal's, s = a + 2^(E - man_bits +
// 23) lands in a binade whose ulp is the format's ulp at a, so the float adder does the rounding
// (RN for nearest-even, RZ for toward-zero, RZ of a + ulp/2 for nearest-away) and the low bits of
// s are the rounded significand q. Stochastic rounding adds a magic 2^16 times smaller, whose RZ
// sum holds floor(a / ulp * 2^16) = q * 2^16 + fraction16 exactly (a < 2^(E + 1) keeps it below
// 2^23), and adds the dither to it: (that + dither) >> 16 is the reference's q + up. Same codes
// as encode_lane; `value` gets the code's decoded magnitude (fake-quantize).
template <Rounding kMode, bool kInteger>
__device__ __forceinline__ uint32_t encode_mag(const DevFormat& f, float a, uint32_t dither,
                                               float& value) {
  const uint32_t ab = __float_as_uint(a);
  int E = 0;
  uint32_t mb = f.magic_add;
  if constexpr (!kInteger) {
    E = max(int(ab >> 23), f.emin_b);
    mb = uint32_t(E) * (1u << 23) + f.magic_add;
  }
  uint32_t q;
  if constexpr (kMode == Rounding::kStochastic) {
    const uint32_t mb16 = mb - (16u << 23);
    const float s16 = __fadd_rz(a, __uint_as_float(mb16));
    q = (__float_as_uint(s16) - mb16 + dither) >> 16;
    value = __fsub_rn(__uint_as_float(mb + q), __uint_as_float(mb));
  } else {
    float s;
    if constexpr (kMode == Rounding::kNearestEven) {
      s = __fadd_rn(a, __uint_as_float(mb));
    } else if constexpr (kMode == Rounding::kTowardZero) {
      s = __fadd_rz(a, __uint_as_float(mb));
    } else {  // nearest, ties away: floor(a / ulp + 1/2)
      s = __fadd_rz(__fadd_rz(a, __uint_as_float(mb - (24u << 23))), __uint_as_float(mb));
    }
    q = __float_as_uint(s) - mb;
    value = __fsub_rn(s, __uint_as_float(mb));
  }
  value = fminf(value, f.max_value);
  if constexpr (kInteger) {
    return min(q, f.max_code);
  } else {
    return min(q + (uint32_t(E - f.emin_b) << f.man_bits), f.max_code);
  }
}

}  // namespace mx::cuda
