// Integer lanes for the matrix product's fast mode on AVX2: the same types and results as
// lanes_int8_avx512.h, one ymm register per block.
#pragma once

#include "mx/kernels/cpu/lanes_avx2.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct I8x64 {
  __m256i block0, block1;
};

inline I8x64 pair_of(Codes32 block0, Codes32 block1) {
  return {block0.v, block1.v};
}
inline I8x64 load_i8x64(const int8_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))};
}
inline I32x16 load_i32x16(const int32_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8))};
}
inline F32x16 to_f32(I32x16 a) {
  return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)};
}

// One block's 16 bytes of 4-bit codes in element order: see lanes_int8_avx512.h.
inline __m256i unpack4_words(const uint8_t* p) {
  const __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_or_si256(w, _mm256_slli_epi16(w, 4)), _mm256_set1_epi16(0x0F0F));
}
inline I8x64 unpack4_pair(const uint8_t* p) {
  return {unpack4_words(p), unpack4_words(p + 16)};
}
inline I8x64 unpack8_pair(const uint8_t* p) {
  return load_i8x64(reinterpret_cast<const int8_t*>(p));
}

struct ByteTable16 {
  __m256i v;
};
inline ByteTable16 make_byte_table16(const int8_t* values) {
  return {_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values)))};
}
inline I8x64 lookup(const ByteTable16& t, I8x64 codes) {
  return {_mm256_shuffle_epi8(t.v, codes.block0), _mm256_shuffle_epi8(t.v, codes.block1)};
}

struct ByteTable64 {
  __m256i part[4];
};
inline ByteTable64 make_byte_table64(const int8_t* values) {
  ByteTable64 t;
  for (int q = 0; q < 4; ++q) {
    t.part[q] = _mm256_broadcastsi128_si256(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(values + 16 * q)));
  }
  return t;
}
// blendv picks by each byte's top bit: bits 4 and 5 are shifted up there in turn.
inline __m256i lookup64(const ByteTable64& t, __m256i codes) {
  const __m256i low4 = _mm256_and_si256(codes, _mm256_set1_epi8(0x0F));
  const __m256i bit4_on_top = _mm256_slli_epi16(codes, 3);
  const __m256i bit5_on_top = _mm256_slli_epi16(codes, 2);
  const __m256i low_half = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.part[0], low4),
                                              _mm256_shuffle_epi8(t.part[1], low4), bit4_on_top);
  const __m256i high_half = _mm256_blendv_epi8(_mm256_shuffle_epi8(t.part[2], low4),
                                               _mm256_shuffle_epi8(t.part[3], low4), bit4_on_top);
  return _mm256_blendv_epi8(low_half, high_half, bit5_on_top);
}
inline I8x64 lookup(const ByteTable64& t, I8x64 codes) {
  return {lookup64(t, codes.block0), lookup64(t, codes.block1)};
}

inline I8x64 flip_top_bits(I8x64 a) {
  const __m256i top = _mm256_set1_epi8(-128);
  return {_mm256_xor_si256(a.block0, top), _mm256_xor_si256(a.block1, top)};
}

// vpmaddubsw on |w| and x with w's sign (vpsignb), then vpmaddwd: see lanes_int8_avx512.h.
inline constexpr bool kWeightsBiasedBy128 = false;
inline __m256i dot_quads_block(__m256i w, __m256i x) {
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}
inline I32x16 dot_quads(I8x64 w, I8x64 x, I32x16) {
  return {dot_quads_block(w.block0, x.block0), dot_quads_block(w.block1, x.block1)};
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
