// Integer element values for the matrix product's fast mode: the codes of a pair of blocks ->
// the int8 n of each element's value n * 2^q (q = quantum_exponent in matmul_kernels.h), for the
// formats where has_int8_values holds, as I8x64 (lanes_int8_*.h).
#pragma once

#include <cmath>

#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/kernels/cpu/element_decoders.h"
#include "mx/kernels/cpu/lanes.h"
#include "mx/kernels/cpu/matmul_kernels.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

template <int kBits>
inline I8x64 unpack_pair(const uint8_t* p) {
  if constexpr (kBits == 4) return unpack4_pair(p);
  if constexpr (kBits == 8) return unpack8_pair(p);
  if constexpr (kBits != 4 && kBits != 8)
    return pair_of(unpack<kBits>(p), unpack<kBits>(p + 4 * kBits));
}
// A lone last block, paired with zeros.
template <int kBits>
inline I8x64 unpack_single(const uint8_t* p) {
  return pair_of(unpack<kBits>(p), zero_codes());
}

// The values as dot_quads takes them: plus 128 (top bit flipped) where it multiplies unsigned
// weights (AVX-512 VNNI), so the lookup hands them over ready.
inline void int8_value_table(const FormatTraits& f, int8_t* values) {
  const int q = quantum_exponent(f);
  for (int c = 0; c < (1 << f.bits); ++c) {
    const auto n = int8_t(std::ldexp(decode_element(f, uint8_t(c)), -q));
    values[c] = kWeightsBiasedBy128 ? int8_t(uint8_t(n) ^ 0x80u) : n;
  }
}
struct Int8Table16 {  // formats of 2 and 4 bits
  ByteTable16 table;
  explicit Int8Table16(const FormatTraits& f) {
    int8_t values[16] = {};
    int8_value_table(f, values);
    table = make_byte_table16(values);
  }
  I8x64 operator()(I8x64 codes) const { return lookup(table, codes); }
};
struct Int8Table64 {  // 6-bit formats (MXFP6 E2M3)
  ByteTable64 table;
  explicit Int8Table64(const FormatTraits& f) {
    int8_t values[64] = {};
    int8_value_table(f, values);
    table = make_byte_table64(values);
  }
  I8x64 operator()(I8x64 codes) const { return lookup(table, codes); }
};
struct Int8Codes {  // MXINT8: the codes are the integers
  I8x64 operator()(I8x64 codes) const {
    if constexpr (kWeightsBiasedBy128) return flip_top_bits(codes);
    return codes;
  }
};

// Calls fn(Bits<bits>{}, values) for a format with int8 values; false for any other.
template <class Fn>
bool with_int8_values(const FormatTraits& f, Fn&& fn) {
  if (!has_int8_values(f)) return false;
  if (f.bits == 8) {
    fn(Bits<8>{}, Int8Codes{});
  } else if (f.bits == 6) {
    fn(Bits<6>{}, Int8Table64(f));
  } else if (f.bits == 4) {
    fn(Bits<4>{}, Int8Table16(f));
  } else if (f.bits == 2) {
    fn(Bits<2>{}, Int8Table16(f));
  } else {
    return false;
  }
  return true;
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
