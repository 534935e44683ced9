// The 32 codes of one packed block, one per byte of a ymm register, in element order: the
// unpacking shared by the AVX2 and AVX-512 targets. Packing is the little-endian bit stream of
// mx/core/bitpack.h: code i of width w sits at bits [w*i, w*i + w) of the block's bytes. Each
// function reads exactly the block's 32 * w / 8 bytes, never past them.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct Codes32 {
  __m256i v;
};

inline Codes32 zero_codes() {
  return {_mm256_setzero_si256()};
}

inline Codes32 unpack8(const uint8_t* p) {
  return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))};
}

// 16 bytes: element 2j is byte j's low nibble, element 2j + 1 its high nibble.
inline Codes32 unpack4(const uint8_t* p) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i nibble = _mm_set1_epi8(0x0F);
  const __m128i low = _mm_and_si128(packed, nibble);
  const __m128i high = _mm_and_si128(_mm_srli_epi16(packed, 4), nibble);
  return {_mm256_set_m128i(_mm_unpackhi_epi8(low, high), _mm_unpacklo_epi8(low, high))};
}

// 24 bytes: every three bytes b0 b1 b2 hold four codes, w = b0 | b1 << 8 | b2 << 16 and code
// c = (w >> 6c) & 63. A byte shuffle gives each 32-bit lane its group as [b0, b1, b1, b2]:
// the low half (b0 | b1 << 8) holds codes 0 and 1 at bits 0 and 6, the high half (b1 | b2 << 8)
// codes 2 and 3 at bits 4 and 10 (bits 20 and 26 of the lane). Shifts move each to its byte.
inline Codes32 unpack6(const uint8_t* p) {
  // Lane 0 of the ymm holds bytes 0-15 (groups 0-3), lane 1 bytes 8-23 (groups 4-7 at 4-15).
  const __m256i bytes = _mm256_set_m128i(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 8)),
                                         _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i groups = _mm256_setr_epi8(0, 1, 1, 2, 3, 4, 4, 5, 6, 7, 7, 8, 9, 10, 10, 11,  //
                                          4, 5, 5, 6, 7, 8, 8, 9, 10, 11, 11, 12, 13, 14, 14, 15);
  const __m256i v = _mm256_shuffle_epi8(bytes, groups);
  const __m256i c0 = _mm256_and_si256(v, _mm256_set1_epi32(0x3F));
  const __m256i c1 = _mm256_and_si256(_mm256_slli_epi32(v, 2), _mm256_set1_epi32(0x3F00));
  const __m256i c2 = _mm256_and_si256(_mm256_srli_epi32(v, 4), _mm256_set1_epi32(0x3F0000));
  const __m256i c3 = _mm256_and_si256(_mm256_srli_epi32(v, 2), _mm256_set1_epi32(0x3F000000));
  return {_mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3))};
}

// 8 bytes: four codes per byte. pdep deposits each 16-bit run (8 codes) into the low two bits
// of 8 bytes.
inline Codes32 unpack2(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  const uint64_t low_two_bits = 0x0303030303030303ull;
  return {_mm256_setr_epi64x(
      int64_t(_pdep_u64(w, low_two_bits)), int64_t(_pdep_u64(w >> 16, low_two_bits)),
      int64_t(_pdep_u64(w >> 32, low_two_bits)), int64_t(_pdep_u64(w >> 48, low_two_bits)))};
}

template <int kBits>
inline Codes32 unpack(const uint8_t* p) {
  static_assert(kBits == 8 || kBits == 6 || kBits == 4 || kBits == 2);
  if constexpr (kBits == 8) return unpack8(p);
  if constexpr (kBits == 6) return unpack6(p);
  if constexpr (kBits == 4) return unpack4(p);
  if constexpr (kBits == 2) return unpack2(p);
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
