// Sixteen-lane vectors on AVX2: two ymm registers per vector, lanes 0-7 in `lo`, 8-15 in `hi`.
// The same types and functions as lanes_avx512.h, with the same results lane for lane.
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "mx/kernels/cpu/unpack_codes_x86.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct F32x16 {
  __m256 lo, hi;
};
struct U32x16 {
  __m256i lo, hi;
};
struct I32x16 {
  __m256i lo, hi;
};

inline F32x16 splat(float x) {
  return {_mm256_set1_ps(x), _mm256_set1_ps(x)};
}
inline U32x16 splat_u32(uint32_t x) {
  return {_mm256_set1_epi32(int(x)), _mm256_set1_epi32(int(x))};
}
inline F32x16 splat_halves(float low, float high) {
  return {_mm256_set1_ps(low), _mm256_set1_ps(high)};
}
inline F32x16 operator*(F32x16 a, F32x16 b) {
  return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)};
}
inline F32x16 operator+(F32x16 a, F32x16 b) {
  return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
inline F32x16 fused_mul_add(F32x16 a, F32x16 b, F32x16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}

// A hint to bring the cache line holding p into the caches; it never faults.
inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
}
inline F32x16 load_f32(const float* p) {
  return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
inline void store_f32(float* p, F32x16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
// The first n (1 to 16) lanes of a vector (lanes_avx512.h): masked loads read zeros into
// the other lanes without touching their memory, and masked stores leave it as it was.
struct PartMask {
  __m256i lo, hi;
};
inline PartMask part_mask(int n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return {_mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane),
          _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8), lane)};
}
inline F32x16 load_f32_part(const float* p, PartMask m) {
  return {_mm256_maskload_ps(p, m.lo), _mm256_maskload_ps(p + 8, m.hi)};
}
inline void store_f32_part(float* p, F32x16 a, PartMask m) {
  _mm256_maskstore_ps(p, m.lo, a.lo);
  _mm256_maskstore_ps(p + 8, m.hi, a.hi);
}

// out[q] lane r = in[r] lane q, for eight rows of eight.
inline void transpose8(const __m256 (&in)[8], __m256 (&out)[8]) {
  __m256 quad[8];  // quad[4g + c], 128-bit lane l: column 4l + c of rows 4g..4g+3
  for (int g = 0; g < 2; ++g) {
    const __m256 r0 = in[4 * g], r1 = in[4 * g + 1], r2 = in[4 * g + 2], r3 = in[4 * g + 3];
    const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(r0, r1));
    const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(r0, r1));
    const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(r2, r3));
    const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(r2, r3));
    quad[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
    quad[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
    quad[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
    quad[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    out[c] = _mm256_permute2f128_ps(quad[c], quad[4 + c], 0x20);
    out[4 + c] = _mm256_permute2f128_ps(quad[c], quad[4 + c], 0x31);
  }
}

// Lane r of m[q] and lane q of m[r] trade places (as lanes_scalar.h): four 8 x 8 transposes,
// the off-diagonal quarters trading places.
inline void transpose16(F32x16 (&m)[16]) {
  __m256 in[8], out[8];
  __m256 result[2][16];  // [half of the lanes][column]
  for (int half = 0; half < 2; ++half) {
    for (int side = 0; side < 2; ++side) {
      for (int r = 0; r < 8; ++r) in[r] = side == 0 ? m[8 * half + r].lo : m[8 * half + r].hi;
      transpose8(in, out);
      for (int q = 0; q < 8; ++q) result[half][8 * side + q] = out[q];
    }
  }
  for (int q = 0; q < 16; ++q) m[q] = {result[0][q], result[1][q]};
}

// The tree of lanes_avx512.h: lane j + lane j + 8, then j + 4, j + 2, j + 1.
inline float sum_lanes(F32x16 a) {
  const __m256 s8 = _mm256_add_ps(a.lo, a.hi);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

inline U32x16 operator&(U32x16 a, U32x16 b) {
  return {_mm256_and_si256(a.lo, b.lo), _mm256_and_si256(a.hi, b.hi)};
}
inline U32x16 operator>>(U32x16 a, U32x16 count) {
  return {_mm256_srlv_epi32(a.lo, count.lo), _mm256_srlv_epi32(a.hi, count.hi)};
}

inline U32x16 widen_bytes(const uint8_t* p) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return {_mm256_cvtepu8_epi32(bytes), _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))};
}
inline U32x16 widen_pairs(Codes32 c) {
  return {_mm256_cvtepu16_epi32(_mm256_castsi256_si128(c.v)),
          _mm256_cvtepu16_epi32(_mm256_extracti128_si256(c.v, 1))};
}
template <int kByte>
inline F32x16 int8_to_f32(U32x16 pairs) {
  const __m256i lo = _mm256_srai_epi32(_mm256_slli_epi32(pairs.lo, 24 - 8 * kByte), 24);
  const __m256i hi = _mm256_srai_epi32(_mm256_slli_epi32(pairs.hi, 24 - 8 * kByte), 24);
  return {_mm256_cvtepi32_ps(lo), _mm256_cvtepi32_ps(hi)};
}

// Sixteen entries in two registers of eight: vpermps reads an index's low three bits, and its
// bit 3, moved to the sign bit, picks the register. Bits above 3 are ignored.
struct Table16 {
  __m256 low, high;
};
inline Table16 make_table16(const float* values) {
  return {_mm256_loadu_ps(values), _mm256_loadu_ps(values + 8)};
}
inline Table16 scaled(const Table16& t, F32x16 factor) {
  return {_mm256_mul_ps(t.low, factor.lo), _mm256_mul_ps(t.high, factor.lo)};
}
inline __m256 lookup8x2(const Table16& t, __m256i index) {
  const __m256 from_low = _mm256_permutevar8x32_ps(t.low, index);
  const __m256 from_high = _mm256_permutevar8x32_ps(t.high, index);
  return _mm256_blendv_ps(from_low, from_high, _mm256_castsi256_ps(_mm256_slli_epi32(index, 28)));
}
inline F32x16 lookup(const Table16& t, U32x16 index) {
  return {lookup8x2(t, index.lo), lookup8x2(t, index.hi)};
}

// Decoding in registers beats a table in memory (element_decoders.h), except FP6 and FP8
// codes, where one gather per eight values beats decoding their fields.
inline constexpr bool kDecodesInRegisters = true;
inline F32x16 gather(const float* table, U32x16 index) {
  return {_mm256_i32gather_ps(table, index.lo, 4), _mm256_i32gather_ps(table, index.hi, 4)};
}

// ---------------------------------------------------------------------------------------------
// Output: 64 bytes at a time, through PlainStores or StreamingStores.

struct Bytes64 {
  __m256i lo, hi;
};

// Eight pairs (16 elements) in element order.
inline Bytes64 f32_pairs8(__m256 even, __m256 odd) {
  const __m256 first = _mm256_unpacklo_ps(even, odd);   // elements 0-3 | 8-11
  const __m256 second = _mm256_unpackhi_ps(even, odd);  // elements 4-7 | 12-15
  return {_mm256_castps_si256(_mm256_permute2f128_ps(first, second, 0x20)),
          _mm256_castps_si256(_mm256_permute2f128_ps(first, second, 0x31))};
}
inline Bytes64 f32_first_half(F32x16 even, F32x16 odd) {
  return f32_pairs8(even.lo, odd.lo);
}
inline Bytes64 f32_second_half(F32x16 even, F32x16 odd) {
  return f32_pairs8(even.hi, odd.hi);
}

inline __m256i bf16_rounded(__m256 a) {
  const __m256i bits = _mm256_castps_si256(a);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
  const __m256i rounding = _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(bits, rounding), 16);
  const __m256i magnitude = _mm256_and_si256(bits, _mm256_set1_epi32(0x7FFFFFFF));
  const __m256i nan = _mm256_cmpgt_epi32(magnitude, _mm256_set1_epi32(0x7F800000));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}
inline __m256i bf16_words(__m256 even, __m256 odd) {
  return _mm256_or_si256(bf16_rounded(even), _mm256_slli_epi32(bf16_rounded(odd), 16));
}
inline Bytes64 bf16_pairs(F32x16 even, F32x16 odd) {
  return {bf16_words(even.lo, odd.lo), bf16_words(even.hi, odd.hi)};
}
inline __m256i bf16_top_halves(__m256 even, __m256 odd) {
  const __m256i even_low = _mm256_srli_epi32(_mm256_castps_si256(even), 16);
  const __m256i odd_high = _mm256_and_si256(_mm256_castps_si256(odd), _mm256_set1_epi32(-65536));
  return _mm256_or_si256(even_low, odd_high);
}
inline Bytes64 bf16_pairs_truncated(F32x16 even, F32x16 odd) {
  return {bf16_top_halves(even.lo, odd.lo), bf16_top_halves(even.hi, odd.hi)};
}

// Ordinary stores, 64 bytes at any address. Without masked byte stores, aligning an output onto
// whole lines would cost AVX2 more than non-temporal stores save: it does not stream.
struct PlainStores {
  void put(void* p, Bytes64 b) const {
    _mm256_storeu_si256(static_cast<__m256i*>(p), b.lo);
    _mm256_storeu_si256(static_cast<__m256i*>(p) + 1, b.hi);
  }
};
using StreamingStores = PlainStores;

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
