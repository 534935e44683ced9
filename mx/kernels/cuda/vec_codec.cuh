// The fast kernels' codec: 32 values per thread, format constants folded into a few integer and
// float ops (encode_mag in codec.cuh rounds the magnitudes). The block scale of 32 * G values over
// G lanes, the packed codes and the fake-quantized values of 32 values, their stochastic dithers,
// and their 16-byte vectors. Shared by the fast quantize, fake-quantize, dual and dequantize
// kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// Two float32 to two E4M3 / E5M2 codes (lo in the low byte): round to nearest even, saturating
// to the largest finite value.
__device__ __forceinline__ uint32_t cvt_fp8x2(int which, float lo, float hi) {
  uint16_t d;
  if (which == 1) {
    asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(d) : "f"(hi), "f"(lo));
  }
  return d;
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  // Hardware RNE; equal to f32_to_bf16_bits for every non-NaN input (NaN blocks are written
  // separately, see fake_vectors_bf16).
  uint32_t d;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}

// One value's bfloat16 bits, hardware RNE: equal to f32_to_bf16_bits for every non-NaN input.
__device__ __forceinline__ uint16_t bf16_bits_rn(float v) {
  uint16_t d;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(d) : "f"(v));
  return d;
}

__device__ __forceinline__ uint32_t amax_f32(const float* v, int n) {
  uint32_t amax = 0;
  for (int j = 0; j < n; ++j) amax = max(amax, __float_as_uint(v[j]) & 0x7FFFFFFFu);
  return amax;
}

// Block scale of 32 * G values spread over G lanes (G a power of two <= 32, groups aligned in
// the warp; every lane of the warp calls this). `mask` marks real slots (asymmetric min/max);
// padding slots hold 0. Applies flush_subnormals and the asymmetric shift to v in place.
__device__ __forceinline__ BlockState scale32(const DevSpec& s, float v[32], uint32_t amax,
                                              uint32_t mask, int G) {
  if (s.flush) {
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = flush_sub(v[j]);
    amax = 0;
#pragma unroll
    for (int j = 0; j < 32; ++j) amax = max(amax, __float_as_uint(v[j]) & 0x7FFFFFFFu);
  }
  for (int o = 1; o < G; o <<= 1) amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  BlockState st{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) {
    float lo = __uint_as_float(0x7F800000u), hi = __uint_as_float(0xFF800000u);
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      if ((mask >> j) & 1u) {
        lo = min_first(lo, v[j]);
        hi = max_first(hi, v[j]);
      }
    }
    shift_by_offset<32>(v, mask, G, lo, hi, amax, st);
  }
  finish_scale(s, amax, st);
  return st;
}

// Stochastic dithers of the 32 values a thread holds. PairedDraws: flat indices index0, index0 +
// 1, ... with index0 a multiple of 32, so the 16 pairs share one window key and each hash feeds
// two values (starting_at: any first index whose 32 values share a window of 2^33).
// StridedDraws: index0, index0 + step, ..., any alignment.
struct PairedDraws {
  uint32_t x, high_dither = 0;
  bool high = false;
  __device__ PairedDraws(const DevSpec& s, int64_t index0)
      : x(uint32_t(uint64_t(index0) >> 1) * kStochasticPairStep +
          window_key_at(s.key, s.window0_key, uint64_t(index0) >> 33)) {}
  // The draws of indices `index`, index + 1, ...: an odd index takes the second half of its
  // pair's hash.
  __device__ static PairedDraws starting_at(const DevSpec& s, int64_t index) {
    PairedDraws d(s, index & ~int64_t{1});
    if (index & 1) d.next();
    return d;
  }
  __device__ __forceinline__ uint32_t next() {
    uint32_t d;
    if (high) {
      d = high_dither;
    } else {
      // lowbias32_before_last_step with its right shifts as multiply-highs (FMA pipe; the
      // quantize loop is bound by the integer ALU pipe). Tested equal to the CPU's bits.
      uint32_t y = x ^ __umulhi(x, 1u << 16);
      y *= 0x7FEB352Du;
      y ^= __umulhi(y, 1u << 17);
      y *= 0x846CA68Bu;
      x += kStochasticPairStep;
      high_dither = __umulhi(y, 1u << 16);
      d = (y ^ high_dither) & 0xFFFFu;
    }
    high = !high;
    return d;
  }
};

struct StridedDraws {
  uint64_t key;
  uint32_t window0_key;
  int64_t index, step;
  __device__ StridedDraws(const DevSpec& s, int64_t index0, int64_t step)
      : key(s.key), window0_key(s.window0_key), index(index0), step(step) {}
  __device__ __forceinline__ uint32_t next() {
    const uint32_t d = dither_at(key, window0_key, index);
    index += step;
    return d;
  }
};

// The sign bits of v[0, 4) in bit 7 of bytes 0-3 (the other bits are junk).
__device__ __forceinline__ uint32_t top_bytes(float v0, float v1, float v2, float v3) {
  const uint32_t lo = __byte_perm(__float_as_uint(v0), __float_as_uint(v1), 0x0073);
  const uint32_t hi = __byte_perm(__float_as_uint(v2), __float_as_uint(v3), 0x0073);
  return __byte_perm(lo, hi, 0x5410);
}

// The sign bits of the 32 / kBits values of one packed word of codes, at the top bit of each
// code: three byte permutes per four values instead of a shift and an add per value.
template <int kBits, class Values>
__device__ __forceinline__ uint32_t sign_bits(const Values& v, int i) {
  if constexpr (kBits == 8) {
    return top_bytes(v[i], v[i + 1], v[i + 2], v[i + 3]) & 0x80808080u;
  } else {
    const uint32_t odd = top_bytes(v[i + 1], v[i + 3], v[i + 5], v[i + 7]);
    const uint32_t even = top_bytes(v[i], v[i + 2], v[i + 4], v[i + 6]);
    return (odd & 0x80808080u) | ((even >> 4) & 0x08080808u);
  }
}

// Codes of 32 values (the block state already computed), packed LSB-first into kBits words.
template <Rounding kMode, bool kInteger, int kBits, class Draws, class Values>
__device__ __forceinline__ void codes32(const DevSpec& s, const BlockState& st, const Values& v,
                                        uint32_t mask, Draws draws, uint32_t words[kBits]) {
#pragma unroll
  for (int w = 0; w < kBits; ++w) words[w] = 0;
  if (st.nan_block) return;
  if (kBits == 8 && kMode == Rounding::kNearestEven && s.f.cvt != 0) {
#pragma unroll
    for (int j = 0; j < 32; j += 4) {
      const uint32_t lo =
          cvt_fp8x2(s.f.cvt, __fmul_rn(v[j], st.inv_scale), __fmul_rn(v[j + 1], st.inv_scale));
      const uint32_t hi =
          cvt_fp8x2(s.f.cvt, __fmul_rn(v[j + 2], st.inv_scale), __fmul_rn(v[j + 3], st.inv_scale));
      words[j / 4] = lo + hi * 65536u;
    }
  } else if constexpr (!kInteger) {
    // encode_mag's float-format arithmetic with the constant terms folded out of the loop:
    // with bits(s) = E * 2^23 + magic_add + q, the code q + ((E - emin_b) << man_bits) is
    // bits(s) + E * (2^man_bits - 2^23) - kc. The clamp compares against max_code + kc, the
    // sign is added in place, and kc is taken off each packed word once at the end (the packed
    // sum is exact modulo 2^32). Stochastic rounding: (bits(s16) + E7 * (2^(man_bits + 16) -
    // 2^23)) >> 16 - (e7min << man_bits) is the code itself (kc = 0). The signs are gathered from
    // the inputs' top bytes after the loop.
    const DevFormat& f = s.f;
    constexpr bool kSr = kMode == Rounding::kStochastic;
    const uint32_t kc = kSr ? 0u : f.magic_add + (uint32_t(f.emin_b) << f.man_bits);
    const uint32_t cmax = f.max_code + kc;
    const uint32_t ek = (1u << f.man_bits) - (1u << 23);
    const uint32_t ek16 = (1u << (f.man_bits + 16)) - (1u << 23);
    const uint32_t c7 = 7u - uint32_t(f.man_bits), e7min = uint32_t(f.emin_b) + c7;
    const uint32_t c16 = (e7min << f.man_bits);  // (e7min << (man_bits + 16)) >> 16
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const float a = __fmul_rn(fabsf(v[j]), st.inv_scale);
      const uint32_t ab = __float_as_uint(a);
      const uint32_t E = uint32_t(max(int(ab >> 23), f.emin_b));
      uint32_t c;
      if constexpr (kSr) {
        // The magic 2^16 times finer, E7 << 23 with E7 = E + 7 - man_bits, plus the dither in
        // its low bits: the RZ sum's bits are E7 << 23 + floor(a / ulp * 2^16) + dither. The
        // right shifts are multiply-highs, which run on the FMA pipe: this loop is otherwise
        // bound by the integer ALU pipe.
        const uint32_t d = draws.next();
        const uint32_t E7 = max(__umulhi(ab, 1u << 9) + c7, e7min);
        const float s16 = __fadd_rz(a, __uint_as_float(E7 * (1u << 23) + d));
        c = __umulhi(__float_as_uint(s16) + E7 * ek16, 1u << 16) - c16;
      } else {
        const uint32_t mb = E * (1u << 23) + f.magic_add;
        float sum;
        if constexpr (kMode == Rounding::kNearestEven) {
          sum = __fadd_rn(a, __uint_as_float(mb));
        } else if constexpr (kMode == Rounding::kTowardZero) {
          sum = __fadd_rz(a, __uint_as_float(mb));
        } else {
          sum = __fadd_rz(__fadd_rz(a, __uint_as_float(mb - (24u << 23))), __uint_as_float(mb));
        }
        c = __float_as_uint(sum) + E * ek;  // code + kc
      }
      c = min(c, cmax);
      words[j * kBits / 32] += c * (1u << ((j * kBits) % 32));
    }
    const uint32_t ones = kBits == 8 ? 0x01010101u : 0x11111111u;
#pragma unroll
    for (int w = 0; w < kBits; ++w) {
      if (!kSr) words[w] -= kc * ones;
      words[w] |= sign_bits<kBits>(v, w * (32 / kBits));
    }
  } else {
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const float a = __fmul_rn(fabsf(v[j]), st.inv_scale);
      uint32_t d = 0;
      if constexpr (kMode == Rounding::kStochastic) d = draws.next();
      float value;
      uint32_t code = encode_mag<kMode, kInteger>(s.f, a, d, value);
      const uint32_t sign = __float_as_uint(v[j]) >> 31;
      if constexpr (kInteger) {
        code = (sign ? 0u - code : code) & ((1u << kBits) - 1u);
      } else {
        code += sign << (kBits - 1);
      }
      words[j * kBits / 32] += code << ((j * kBits) % 32);
    }
  }
  if (mask != 0xFFFFFFFFu) {
    // Padding slots encode as 0.
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      if (!((mask >> j) & 1u))
        words[j * kBits / 32] &= ~(((1u << kBits) - 1u) << ((j * kBits) % 32));
    }
  }
}

// Four codes of 6 bits, one per byte of an 8-bit-code word (a float code's sign in bit 7, an
// integer code in two's complement), as the 24 low bits of the packed stream.
template <bool kInteger>
__device__ __forceinline__ uint32_t six_bit_group(uint32_t w8) {
  const uint32_t m = kInteger ? w8 & 0x3F3F3F3Fu : (w8 & 0x1F1F1F1Fu) | ((w8 >> 2) & 0x20202020u);
  return (m & 0x3Fu) | ((m >> 2) & 0xFC0u) | ((m >> 4) & 0x3F000u) | ((m >> 6) & 0xFC0000u);
}

// Codes of 32 values packed LSB-first into kBits words, as codes32, for widths of 4, 6 and 8
// bits. Six-bit codes are encoded as 8-bit ones and then packed: eight 24-bit groups in six
// words.
template <Rounding kMode, bool kInteger, int kBits, class Draws, class Values>
__device__ __forceinline__ void packed_codes32(const DevSpec& s, const BlockState& st,
                                               const Values& v, uint32_t mask, Draws draws,
                                               uint32_t words[kBits]) {
  if constexpr (kBits == 6) {
    uint32_t w8[8];
    codes32<kMode, kInteger, 8>(s, st, v, mask, draws, w8);
    uint32_t g[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) g[i] = six_bit_group<kInteger>(w8[i]);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      words[3 * h] = g[4 * h] | (g[4 * h + 1] << 24);
      words[3 * h + 1] = (g[4 * h + 1] >> 8) | (g[4 * h + 2] << 16);
      words[3 * h + 2] = (g[4 * h + 2] >> 16) | (g[4 * h + 3] << 8);
    }
  } else {
    codes32<kMode, kInteger, kBits>(s, st, v, mask, draws, words);
  }
}

// The 24 bytes of 32 six-bit codes at an 8-byte aligned address.
__device__ __forceinline__ void store_codes6(uint8_t* dst, const uint32_t words[6]) {
  uint2* d = reinterpret_cast<uint2*>(dst);
#pragma unroll
  for (int q = 0; q < 3; ++q) d[q] = make_uint2(words[2 * q], words[2 * q + 1]);
}

// Fake-quantized values of 32 values (decoded codes times the scale, plus the offset).
template <Rounding kMode, bool kInteger, class Draws>
__device__ __forceinline__ void values32(const DevSpec& s, const BlockState& st, float v[32],
                                         Draws draws) {
  const float x = e8m0_value(st.scale);
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const float a = __fmul_rn(fabsf(v[j]), st.inv_scale);
    uint32_t d = 0;
    if constexpr (kMode == Rounding::kStochastic) d = draws.next();
    float value;
    encode_mag<kMode, kInteger>(s.f, a, d, value);
    const uint32_t sign = __float_as_uint(v[j]) & 0x80000000u;
    if constexpr (kInteger) {
      value = sign ? __fsub_rn(0.0f, value) : value;
    } else {
      value = __uint_as_float(__float_as_uint(value) | sign);
    }
    float t = __fmul_rn(value, x);
    if (s.asym) t = __fadd_rn(t, st.m);
    v[j] = t;
  }
}

// 16-byte vectors of 32 fake-quantized values: 8 for float32, 4 for bfloat16; NaN blocks write
// the CPU's NaN.
__device__ __forceinline__ void fake_vectors_f32(const float v[32], bool nan_block, uint4 x[8]) {
#pragma unroll
  for (int q = 0; q < 8; ++q) {
    x[q] = nan_block ? make_uint4(kNanF32, kNanF32, kNanF32, kNanF32)
                     : make_uint4(__float_as_uint(v[4 * q]), __float_as_uint(v[4 * q + 1]),
                                  __float_as_uint(v[4 * q + 2]), __float_as_uint(v[4 * q + 3]));
  }
}
__device__ __forceinline__ void fake_vectors_bf16(const float v[32], bool nan_block, uint4 x[4]) {
  const uint32_t n = 0x7FC07FC0u;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    x[q] = nan_block ? make_uint4(n, n, n, n)
                     : make_uint4(pack_bf16x2(v[8 * q], v[8 * q + 1]),
                                  pack_bf16x2(v[8 * q + 2], v[8 * q + 3]),
                                  pack_bf16x2(v[8 * q + 4], v[8 * q + 5]),
                                  pack_bf16x2(v[8 * q + 6], v[8 * q + 7]));
  }
}

template <int kBits>
__device__ __forceinline__ void code_vectors(const uint32_t words[kBits], uint4 (&x)[kBits / 4]) {
#pragma unroll
  for (int q = 0; q < kBits / 4; ++q) {
    x[q] = make_uint4(words[4 * q], words[4 * q + 1], words[4 * q + 2], words[4 * q + 3]);
  }
}

// N of stage_bytes for a thread's codes: its 16-byte vectors. Six-bit codes (24 bytes a thread)
// are staged as a warp's 48 vectors, for which N = 2 makes room.
constexpr int code_stage_vectors(int bits) {
  return bits == 6 ? 2 : bits / 4;
}

// Shared memory of the staging buffers: 32 * (N + 1) vectors per warp.
constexpr size_t stage_bytes(int threads, int n) {
  return n <= 1 ? 0 : size_t(threads / 32) * 32 * (n + 1) * 16;
}

}  // namespace mx::cuda
