// Integer lanes for the matrix product's fast mode on AVX-512: the 64 codes or int8 values of two
// consecutive blocks in one zmm register, block 0's in bytes 0-31, block 1's in bytes 32-63,
// and their dot products as sixteen int32 sums of four consecutive products (lanes 0-7: block 0,
// lanes 8-15: block 1). lanes_int8_avx2.h and lanes_int8_scalar.h give the same results.
#pragma once

#include "mx/kernels/cpu/lanes_avx512.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct I8x64 {
  __m512i v;
};

inline I8x64 pair_of(Codes32 block0, Codes32 block1) {
  return {_mm512_inserti64x4(_mm512_castsi256_si512(block0.v), block1.v, 1)};
}
inline I8x64 load_i8x64(const int8_t* p) {
  return {_mm512_loadu_si512(p)};
}
inline I32x16 load_i32x16(const int32_t* p) {
  return {_mm512_loadu_si512(p)};
}
inline F32x16 to_f32(I32x16 a) {
  return {_mm512_cvtepi32_ps(a.v)};
}

// Two blocks of 4-bit codes (32 bytes) in element order. Zero-extending byte j to word j and
// OR-ing in the word shifted left by four puts the low nibble (element 2j) in the word's low
// byte and the high nibble (element 2j + 1) in its high byte; the mask clears the rest.
inline I8x64 unpack4_pair(const uint8_t* p) {
  const __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return {_mm512_and_si512(_mm512_or_si512(w, _mm512_slli_epi16(w, 4)), _mm512_set1_epi16(0x0F0F))};
}
inline I8x64 unpack8_pair(const uint8_t* p) {
  return {_mm512_loadu_si512(p)};
}

// Sixteen int8 values indexed by codes below 16: pshufb, the table repeated in every 128 bits.
struct ByteTable16 {
  __m512i v;
};
inline ByteTable16 make_byte_table16(const int8_t* values) {
  return {_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values)))};
}
inline I8x64 lookup(const ByteTable16& t, I8x64 codes) {
  return {_mm512_shuffle_epi8(t.v, codes.v)};
}

// Sixty-four int8 values indexed by codes below 64: four pshufb tables, picked by bits 4 and 5.
struct ByteTable64 {
  __m512i part[4];
};
inline ByteTable64 make_byte_table64(const int8_t* values) {
  ByteTable64 t;
  for (int q = 0; q < 4; ++q) {
    t.part[q] =
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values + 16 * q)));
  }
  return t;
}
inline I8x64 lookup(const ByteTable64& t, I8x64 codes) {
  const __m512i low4 = _mm512_and_si512(codes.v, _mm512_set1_epi8(0x0F));
  const __mmask64 bit4 = _mm512_test_epi8_mask(codes.v, _mm512_set1_epi8(0x10));
  const __mmask64 bit5 = _mm512_test_epi8_mask(codes.v, _mm512_set1_epi8(0x20));
  const __m512i low_half = _mm512_mask_blend_epi8(bit4, _mm512_shuffle_epi8(t.part[0], low4),
                                                  _mm512_shuffle_epi8(t.part[1], low4));
  const __m512i high_half = _mm512_mask_blend_epi8(bit4, _mm512_shuffle_epi8(t.part[2], low4),
                                                   _mm512_shuffle_epi8(t.part[3], low4));
  return {_mm512_mask_blend_epi8(bit5, low_half, high_half)};
}

inline I8x64 flip_top_bits(I8x64 a) {
  return {_mm512_xor_si512(a.v, _mm512_set1_epi8(-128))};
}

// Lane l: w[4l] * x[4l] + ... + w[4l + 3] * x[4l + 3], exactly. w is any int8, x in [-127, 127];
// bias holds -128 * (x[4l] + ... + x[4l + 3]).
#if defined(__AVX512VNNI__)
// vpdpbusd multiplies unsigned by signed bytes, so the weights come as w + 128 (w's top bit
// flipped, which the int8 value tables do once for all), and the bias takes the extra 128 * x
// back out. No step can overflow: |sum| < 2^18.
inline constexpr bool kWeightsBiasedBy128 = true;
inline I32x16 dot_quads(I8x64 w_plus_128, I8x64 x, I32x16 bias) {
  return {_mm512_dpbusd_epi32(bias.v, w_plus_128.v, x.v)};
}
#else
// vpmaddubsw multiplies |w| (unsigned, at most 128) by x with w's sign, and adds neighbours
// into 16 bits without saturating: 2 * 128 * 127 < 2^15. vpmaddwd adds the neighbouring pairs.
inline constexpr bool kWeightsBiasedBy128 = false;
inline I32x16 dot_quads(I8x64 w, I8x64 x, I32x16) {
  const __m512i magnitude = _mm512_abs_epi8(w.v);
  const __m512i signed_x =
      _mm512_mask_sub_epi8(x.v, _mm512_movepi8_mask(w.v), _mm512_setzero_si512(), x.v);
  const __m512i pairs = _mm512_maddubs_epi16(magnitude, signed_x);
  return {_mm512_madd_epi16(pairs, _mm512_set1_epi16(1))};
}
#endif

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
