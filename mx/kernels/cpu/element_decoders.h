// Element decoders: one packed block of 32 codes -> its dequantized values X * element, as two
// sixteen-lane vectors of pairs (even: elements 2j, odd: 2j + 1; see lanes_avx512.h). Each
// decoder is built from the format table (mx/core/format.h) and gives exactly the float32
// product decode_element(code) * X for every code; tests decode every code of every format on
// every target and compare bits. with_decoder picks the quickest one for the format and target.
//
// Like every float32 product of the CPU path, the scale's multiply assumes the default
// floating-point environment (no flush-to-zero, no denormals-are-zero): scale byte 0 is the
// float32 subnormal 2^-127.
#pragma once

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/core/half.h"
#include "mx/kernels/cpu/lanes.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct Pairs {
  F32x16 even, odd;
};

// Formats of at most four bits: the 16 values in one table held in registers, multiplied by X
// once per block (the same float32 products as multiplying each element).
struct LookupDecoder {
  Table16 table;
  explicit LookupDecoder(const FormatTraits& f) {
    float values[16] = {};
    for (int c = 0; c < (1 << f.bits); ++c) values[c] = float(decode_element(f, uint8_t(c)));
    table = make_table16(values);
  }
  // The lookup reads an index's low four bits, so the even code needs no masking.
  template <int kBits>
  Pairs decode(const uint8_t* block, F32x16 scale) const {
    const Table16 t = scaled(table, scale);
    if constexpr (kBits == 4) {
      const U32x16 pairs = widen_bytes(block);
      return {lookup(t, pairs), lookup(t, pairs >> splat_u32(4))};
    } else {
      const U32x16 pairs = widen_pairs(unpack<kBits>(block));
      return {lookup(t, pairs), lookup(t, pairs >> splat_u32(8))};
    }
  }
};

// Eight-bit integers: payload p means p * 2^-(bits - 2). X * 2^-(bits - 2) is exact (at least
// 2^-133), and so is its product with p, so p * (X * 2^-6) is exactly (p * 2^-6) * X.
struct Int8Decoder {
  F32x16 quantum;
  explicit Int8Decoder(const FormatTraits& f) : quantum(splat(std::ldexp(1.0f, -f.man_bits))) {}
  template <int kBits>
  Pairs decode(const uint8_t* block, F32x16 scale) const {
    const U32x16 pairs = widen_pairs(unpack<kBits>(block));
    const F32x16 step = scale * quantum;
    return {int8_to_f32<0>(pairs) * step, int8_to_f32<1>(pairs) * step};
  }
};

// Any format of up to eight bits, through a 256-entry table in memory: FP6 and FP8 on AVX2 (two
// gathers beat decoding the fields in registers) and every 6- and 8-bit format on the scalar
// target.
struct TableDecoder {
  float values[256] = {};
  explicit TableDecoder(const FormatTraits& f) {
    for (int c = 0; c < (1 << f.bits); ++c) values[c] = float(decode_element(f, uint8_t(c)));
  }
  template <int kBits>
  Pairs decode(const uint8_t* block, F32x16 scale) const {
    const U32x16 pairs = widen_pairs(unpack<kBits>(block));
    return {gather(values, pairs & splat_u32(0xFF)) * scale,
            gather(values, pairs >> splat_u32(8)) * scale};
  }
};

// The bfloat16 value of every code of a 6- or 8-bit float format (its first 128 codes for 8
// bits: the magnitudes), and the scale exponents e under which every nonzero finite value times
// 2^e is a normal bfloat16: there, scaling a bfloat16 is adding e to its exponent field.
struct Bf16Values {
  alignas(64) uint16_t values[128] = {};
  int exact_exponent_from = 0, exact_exponent_to = -1;
  explicit Bf16Values(const FormatTraits& f) {
    int lowest = 255, highest = 0;  // exponent fields of the nonzero finite values
    for (int c = 0; c < std::min(1 << f.bits, 128); ++c) {
      values[c] = float_to_bf16(float(decode_element(f, uint8_t(c))));
      const int field = (values[c] >> 7) & 0xFF;
      if ((values[c] & 0x7FFF) != 0 && field != 0xFF) {
        lowest = std::min(lowest, field);
        highest = std::max(highest, field);
      }
    }
    exact_exponent_from = 1 - lowest;
    exact_exponent_to = 254 - highest;
  }
};

#if defined(__AVX512BW__)
// FP6 and FP8 on AVX-512: every element value has at most 8 significant bits and a bfloat16
// exponent, so it is a bfloat16, looked up with 16-bit permutes. vpermt2w indexes 64 words in
// two registers: one lookup decodes a 6-bit code, sign included; an 8-bit code's magnitude takes
// two, picked by bit 6, and its sign bit is copied in. A 32-bit lane then holds the bfloat16
// values of its pair of elements, which become float32 by moving each to the top half.
struct WordTableDecoder {
  __m512i words[4];  // entries 32q .. 32q + 31 in words[q]
  int exact_exponent_from, exact_exponent_to;
  explicit WordTableDecoder(const FormatTraits& f) {
    const Bf16Values table(f);
    for (int q = 0; q < 4; ++q) words[q] = _mm512_load_si512(table.values + 32 * q);
    exact_exponent_from = table.exact_exponent_from;
    exact_exponent_to = table.exact_exponent_to;
  }
  // The 32 element values as bfloat16, one per 16-bit lane in element order.
  template <int kBits>
  __m512i bf16_values(const uint8_t* block) const {
    const __m512i codes = code_words<kBits>(block);
    __m512i values = _mm512_permutex2var_epi16(words[0], codes, words[1]);
    if constexpr (kBits == 8) {
      const __m512i upper = _mm512_permutex2var_epi16(words[2], codes, words[3]);
      const __mmask32 bit6 = _mm512_test_epi16_mask(codes, _mm512_set1_epi16(0x40));
      const __m512i sign = _mm512_and_si512(_mm512_slli_epi16(codes, 8), _mm512_set1_epi16(-32768));
      values = _mm512_or_si512(_mm512_mask_blend_epi16(bit6, values, upper), sign);
    }
    return values;
  }
  template <int kBits>
  Pairs decode(const uint8_t* block, F32x16 scale) const {
    const __m512i values = bf16_values<kBits>(block);
    const F32x16 even = {_mm512_castsi512_ps(_mm512_slli_epi32(values, 16))};
    const F32x16 odd = {_mm512_castsi512_ps(_mm512_and_si512(values, _mm512_set1_epi32(-65536)))};
    return {even * scale, odd * scale};
  }
  // Dequantizing to bfloat16 without float32 (Bf16Values): false when e is outside the range
  // where adding it to the exponent field is exact. Zeros, Inf and NaN are left as they are.
  template <int kBits>
  bool scaled_bf16(const uint8_t* block, int e, Bytes64* out) const {
    if (e < exact_exponent_from || e > exact_exponent_to) return false;
    const __m512i values = bf16_values<kBits>(block);
    const __m512i magnitude = _mm512_and_si512(values, _mm512_set1_epi16(0x7FFF));
    const __mmask32 finite_nonzero = _mm512_test_epi16_mask(magnitude, magnitude) &
                                     _mm512_cmplt_epu16_mask(magnitude, _mm512_set1_epi16(0x7F80));
    const __m512i shifted = _mm512_set1_epi16(int16_t(e * 128));
    out->v = _mm512_mask_add_epi16(values, finite_nonzero, values, shifted);
    return true;
  }
};
inline constexpr int kWordTableMaxBits = 8;
#elif defined(__AVX2__)
// FP6 on AVX2: the same bfloat16 values as two byte planes (low and high bytes), each looked up
// with pshufb, 16 entries to a register, picked by bits 4 and 5 (lookup64, lanes_int8_avx2.h).
// The codes are first reordered by quadwords (0-7, 16-23 | 8-15, 24-31) so that interleaving
// the planes within 128-bit lanes gives the words in element order. FP8's 128 values would
// need 16 registers of tables; gathers stay quicker there.
struct WordTableDecoder {
  ByteTable64 low_bytes, high_bytes;
  int exact_exponent_from, exact_exponent_to;
  explicit WordTableDecoder(const FormatTraits& f) {
    const Bf16Values table(f);
    int8_t low[64], high[64];
    for (int c = 0; c < 64; ++c) {
      low[c] = int8_t(table.values[c] & 0xFF);
      high[c] = int8_t(table.values[c] >> 8);
    }
    low_bytes = make_byte_table64(low);
    high_bytes = make_byte_table64(high);
    exact_exponent_from = table.exact_exponent_from;
    exact_exponent_to = table.exact_exponent_to;
  }
  // The 32 element values as bfloat16 in element order: elements 0-15, then 16-31.
  template <int kBits>
  void bf16_values(const uint8_t* block, __m256i* first, __m256i* second) const {
    static_assert(kBits == 6);
    const __m256i codes = _mm256_permute4x64_epi64(unpack<6>(block).v, 0xD8);
    const __m256i low = lookup64(low_bytes, codes), high = lookup64(high_bytes, codes);
    *first = _mm256_unpacklo_epi8(low, high);
    *second = _mm256_unpackhi_epi8(low, high);
  }
  template <int kBits>
  Pairs decode(const uint8_t* block, F32x16 scale) const {
    __m256i first, second;
    bf16_values<kBits>(block, &first, &second);
    const __m256i top = _mm256_set1_epi32(-65536);
    const F32x16 even = {_mm256_castsi256_ps(_mm256_slli_epi32(first, 16)),
                         _mm256_castsi256_ps(_mm256_slli_epi32(second, 16))};
    const F32x16 odd = {_mm256_castsi256_ps(_mm256_and_si256(first, top)),
                        _mm256_castsi256_ps(_mm256_and_si256(second, top))};
    return {even * scale, odd * scale};
  }
  static __m256i add_to_exponents(__m256i values, __m256i shifted) {
    const __m256i magnitude = _mm256_and_si256(values, _mm256_set1_epi16(0x7FFF));
    const __m256i zero = _mm256_cmpeq_epi16(magnitude, _mm256_setzero_si256());
    const __m256i finite = _mm256_cmpgt_epi16(_mm256_set1_epi16(0x7F80), magnitude);
    return _mm256_add_epi16(values, _mm256_and_si256(_mm256_andnot_si256(zero, finite), shifted));
  }
  template <int kBits>
  bool scaled_bf16(const uint8_t* block, int e, Bytes64* out) const {
    if (e < exact_exponent_from || e > exact_exponent_to) return false;
    __m256i first, second;
    bf16_values<kBits>(block, &first, &second);
    const __m256i shifted = _mm256_set1_epi16(int16_t(e * 128));
    *out = {add_to_exponents(first, shifted), add_to_exponents(second, shifted)};
    return true;
  }
};
inline constexpr int kWordTableMaxBits = 6;
#else
// Never chosen on the scalar target (kWordTableMaxBits); declared so with_decoder compiles.
struct WordTableDecoder : TableDecoder {
  using TableDecoder::TableDecoder;
};
inline constexpr int kWordTableMaxBits = 0;
#endif

template <int kBits>
using Bits = std::integral_constant<int, kBits>;

// Calls fn(Bits<bits>{}, decoder) with the quickest decoder for format f on this target; false
// for a code width the unpacking does not cover (only 2, 4, 6 and 8 bits exist).
template <class Fn>
bool with_decoder(const FormatTraits& f, Fn&& fn) {
  auto for_wide = [&](auto bits) {
    constexpr int kBits = decltype(bits)::value;
    if constexpr (kBits == 8 && kDecodesInRegisters) {
      if (f.is_integer) return fn(bits, Int8Decoder(f));
    }
    if constexpr (kBits <= kWordTableMaxBits) {
      if (!f.is_integer) return fn(bits, WordTableDecoder(f));
    }
    fn(bits, TableDecoder(f));
  };
  switch (f.bits) {
    case 2:
      fn(Bits<2>{}, LookupDecoder(f));
      return true;
    case 4:
      fn(Bits<4>{}, LookupDecoder(f));
      return true;
    case 6:
      for_wide(Bits<6>{});
      return true;
    case 8:
      for_wide(Bits<8>{});
      return true;
  }
  return false;
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
