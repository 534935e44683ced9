// Decoding one MX block of 32 codes to bfloat16 pairs in registers, for the matrix products.
//
// Every value of the OCP element formats times an E8M0 scale is a bfloat16 whenever it is at
// least 2^-126 in magnitude or a multiple of 2^-133 (bfloat16's smallest subnormal), because no
// element format has more than 4 significant bits. The decoder never rounds in that range:
//
// * Float formats: the bits sign << 15 | magnitude << (7 - man_bits) form the bfloat16 of
//   x * 2^-(127 - bias), subnormal codes included (both formats put the implicit bit at the same
//   exponent field). One bfloat16 multiply by 2^(s - bias), an exact power of two, gives
//   x * 2^(s - 127); above 2^127 the factor is split in two and the second multiply overflows to
//   Inf exactly as the float32 value would.
// * Integers: the payload p converts exactly, then p * 2^(s - 127 - fraction bits).
// * NaN scale (0xFF) decodes every slot to NaN; E4M3 NaN codes and E5M2 Inf/NaN codes keep their
//   meaning (detected per block, so that ordinary blocks pay a few instructions per word).
//
// Values below 2^-126 that are not multiples of 2^-133 occur only for E4M3 with scale bytes 0-2
// and E5M2 with scale bytes 0-9; those round to nearest-even in bfloat16 (docs/NUMERICS.md).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/format.h"

namespace mx::cuda {

enum class DecodeKind : uint8_t { kFloat, kE4M3, kE5M2, kInteger };

// The constants of one element format that the decoder needs (host: make_decode_format).
struct DecodeFormat {
  int bits = 8;
  int man_bits = 3;
  int bias = 7;
  DecodeKind kind = DecodeKind::kE4M3;
};

inline DecodeFormat make_decode_format(ElementFormat format) {
  const FormatTraits& t = traits(format);
  DecodeFormat f;
  f.bits = t.bits;
  f.man_bits = t.man_bits;
  f.bias = t.bias;
  f.kind = t.is_integer                     ? DecodeKind::kInteger
           : format == ElementFormat::kE4M3 ? DecodeKind::kE4M3
           : format == ElementFormat::kE5M2 ? DecodeKind::kE5M2
                                            : DecodeKind::kFloat;
  return f;
}

__device__ __forceinline__ uint32_t bf16_pow2_pair(int e) {
  // 2^e as a bfloat16 pair, e in [-133, 127]
  const uint32_t h = e >= -126 ? uint32_t(e + 127) << 7 : 1u << (e + 133);
  return h | (h << 16);
}

__device__ __forceinline__ uint32_t bf16x2_mul(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("mul.rn.bf16x2 %0, %1, %2;\n" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

// Codes 2j and 2j + 1 of a block, in the low bits of the two 16-bit halves (other bits junk
// above each code's own bits).
template <int kBits>
__device__ __forceinline__ uint32_t code_pair(const uint32_t (&w)[8], int j) {
  if constexpr (kBits == 8) {
    return __byte_perm(w[j / 2], 0, (j % 2) ? 0x4342 : 0x4140);
  } else if constexpr (kBits == 6) {
    const int bit = 12 * j;
    const uint32_t v =
        __funnelshift_r(w[bit / 32], w[bit / 32 + 1 < 8 ? bit / 32 + 1 : 7], bit % 32);
    return (v & 0xFFFu) | (v << 10);
  } else if constexpr (kBits == 4) {
    return __byte_perm(w[j / 4], 0, 0x4440 + (j % 4)) * 0x1001u;
  } else {  // 2 bits: codes at bits 4j and 4j + 2
    const uint32_t v = w[j / 8] >> (4 * (j % 8));
    return (v & 3u) | ((v & 0xCu) << 14);
  }
}

// Signed payloads of a code pair as a bfloat16 pair (exact: payloads have at most 8 bits).
template <int kBits>
__device__ __forceinline__ uint32_t integer_pair(uint32_t x) {
  const int lo = int32_t(x << (32 - kBits)) >> (32 - kBits);
  const int hi = int32_t(x << (16 - kBits)) >> (32 - kBits);
  const __nv_bfloat162 v = __floats2bfloat162_rn(float(lo), float(hi));
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int kBits>
__device__ __forceinline__ uint32_t float_pair(uint32_t x, int man_bits) {
  constexpr uint32_t kMag = ((1u << (kBits - 1)) - 1u) * 0x00010001u;
  const uint32_t sign = (x << (16 - kBits)) & 0x80008000u;
  return sign | ((x & kMag) << (7 - man_bits));
}

// 1 when any 8-bit code of the block is an E4M3 NaN (magnitude 0x7F) or an E5M2 Inf/NaN
// (magnitude >= 0x7C): bump = 1 or 4 pushes exactly those magnitudes into bit 7.
__device__ __forceinline__ bool has_special_fp8(const uint32_t (&w)[8], uint32_t bump) {
  uint32_t any = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) any |= ((w[i] & 0x7F7F7F7Fu) + bump * 0x01010101u) & 0x80808080u;
  return any != 0;
}

// The bfloat16 of x * 2^-(127 - bias) for one 8-bit float code, special codes included.
__device__ __forceinline__ uint16_t fp8_special_half(uint32_t code, DecodeKind kind, int man_bits) {
  const uint32_t sign = (code & 0x80u) << 8;
  const uint32_t mag = code & 0x7Fu;
  if (kind == DecodeKind::kE4M3 && mag == 0x7Fu) return 0x7FC0;
  if (kind == DecodeKind::kE5M2 && mag >= 0x7Cu)
    return mag == 0x7Cu ? uint16_t(sign | 0x7F80u) : 0x7FC0;
  return uint16_t(sign | (mag << (7 - man_bits)));
}

// The 16 pairs of a block of 8-bit float codes before scaling, special codes included.
__device__ __forceinline__ void fp8_special_pairs(const uint32_t (&w)[8], const DecodeFormat& f,
                                                  uint32_t (&out)[16]) {
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    const uint32_t word = w[j / 2] >> (16 * (j % 2));
    out[j] = fp8_special_half(word & 0xFFu, f.kind, f.man_bits) |
             (uint32_t(fp8_special_half((word >> 8) & 0xFFu, f.kind, f.man_bits)) << 16);
  }
}

template <int kBits>
__device__ __forceinline__ bool is_integer(const DecodeFormat& f) {
  constexpr bool kHasInteger = kBits != 6;
  constexpr bool kHasFloat = kBits != 2;
  return kHasInteger && (!kHasFloat || f.kind == DecodeKind::kInteger);
}

// The exponent of the factor that turns decode_values' output into values: 2^(s - bias) for
// floats (over x * 2^-(127 - bias)), 2^(s - 127 - fraction bits) for integers (over p).
template <int kBits>
__device__ __forceinline__ int scale_exponent(uint32_t scale, const DecodeFormat& f) {
  return is_integer<kBits>(f) ? int(scale) - 127 - f.man_bits : int(scale) - f.bias;
}

// The 16 pairs before scaling (special FP8 codes not handled: see block_is_plain). Separate
// loops under a uniform branch, so that float formats never pay for the integer conversions.
template <int kBits>
__device__ __forceinline__ void decode_values(const uint32_t (&w)[8], const DecodeFormat& f,
                                              uint32_t (&out)[16]) {
  if (is_integer<kBits>(f)) {
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = integer_pair<kBits>(code_pair<kBits>(w, j));
  } else {
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = float_pair<kBits>(code_pair<kBits>(w, j), f.man_bits);
  }
}

// True for the common block: a finite scale, every slot in K, no special FP8 code. Such a block
// is decode_values times its factor (scale_plain_block).
template <int kBits>
__device__ __forceinline__ bool block_is_plain(const uint32_t (&w)[8], uint32_t scale,
                                               const DecodeFormat& f, int valid) {
  bool plain = scale != 0xFFu && valid == 32;
  if constexpr (kBits == 8) {
    if (f.kind == DecodeKind::kE4M3 || f.kind == DecodeKind::kE5M2) {
      plain = plain && !has_special_fp8(w, f.kind == DecodeKind::kE4M3 ? 1u : 4u);
    }
  }
  return plain;
}

// Multiplies the pairs by 2^e: one bfloat16 multiply up to 2^127, two above (the second
// overflowing to Inf exactly where the float32 value would).
__device__ __forceinline__ void scale_pairs(int e, uint32_t (&out)[16]) {
  if (e <= 127) {
    const uint32_t m = bf16_pow2_pair(e);
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = bf16x2_mul(out[j], m);
  } else {
    const uint32_t m1 = bf16_pow2_pair(e - 127);
    const uint32_t m2 = bf16_pow2_pair(127);
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = bf16x2_mul(bf16x2_mul(out[j], m1), m2);
  }
}

template <int kBits>
__device__ __forceinline__ void scale_plain_block(uint32_t scale, const DecodeFormat& f,
                                                  uint32_t (&out)[16]) {
  scale_pairs(scale_exponent<kBits>(scale, f), out);
}

// Any block, exactly: special codes, NaN scales, factors above 2^127 (two multiplies, the
// second overflowing to Inf as float32 would), and slots at or past `valid` (< 32 only in a
// row's last block) set to zero.
template <int kBits>
__device__ __forceinline__ void decode_any_block(const uint32_t (&w)[8], uint32_t scale,
                                                 const DecodeFormat& f, int valid,
                                                 uint32_t (&out)[16]) {
  decode_values<kBits>(w, f, out);
  if constexpr (kBits == 8) {
    if (f.kind == DecodeKind::kE4M3 || f.kind == DecodeKind::kE5M2) fp8_special_pairs(w, f, out);
  }
  if (scale == 0xFFu) {
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = 0x7FC07FC0u;
  } else {
    scale_pairs(scale_exponent<kBits>(scale, f), out);
  }
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    if (2 * j >= valid) {
      out[j] = 0;
    } else if (2 * j + 1 >= valid) {
      out[j] &= 0xFFFFu;
    }
  }
}

}  // namespace mx::cuda
