// Element decoders: the codes of a block -> their float32 element values (before the block's
// scale), sixteen lanes at a time. Each is built from the format table (mx/core/format.h) and
// gives decode_element's value for every code, as float32; tests decode every code of every
// format on every target and compare bits.
//
// Like every float32 product of the CPU path, the block scale's multiply assumes the default
// floating-point environment (no flush-to-zero, no denormals-are-zero): scale byte 0 is the
// float32 subnormal 2^-127.
#pragma once

#include <cmath>
#include <type_traits>

#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/kernels/cpu/lanes.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

// Formats of at most four bits: every value in one 16-entry table held in registers.
struct LookupDecoder {
  Table16 table;
  explicit LookupDecoder(const FormatTraits& f) {
    float values[16] = {};
    for (int c = 0; c < (1 << f.bits); ++c) values[c] = float(decode_element(f, uint8_t(c)));
    table = make_table16(values);
  }
  template <int kHalf>
  F32x16 decode(Codes32 c) const {
    return lookup(table, widen<kHalf>(c));
  }
};

// Float formats of six and eight bits, from the code's fields with integer adds and one exact
// subtraction, never touching a float32 subnormal (Intel cores take a slow assist on those):
//   normal codes:    the exponent and mantissa fields shifted into float32's, plus 127 - bias
//                    on the exponent, are the value's float32 bits;
//   subnormal codes: the same with an exponent of 1 reads as 2^emin + the value, and
//                    subtracting 2^emin (exact: both lie in [2^emin, 2^(emin+1))) leaves it.
// E4M3's NaN code and E5M2's Inf and NaN codes are replaced afterwards.
template <bool kHasSpecials>
struct FieldsDecoder {
  U32x16 magnitude_mask, field_shift, sign_shift, sign_position;
  U32x16 min_normal;                       // the smallest magnitude with a nonzero exponent
  U32x16 normal_rebias, subnormal_rebias;  // added to the shifted fields
  F32x16 subnormal_offset;                 // 2^emin, taken off again for subnormal codes
  U32x16 special_from;                     // magnitudes from here up are Inf or NaN
  U32x16 infinity_magnitude;               // the magnitude of Inf, if the format has one
  explicit FieldsDecoder(const FormatTraits& f)
      : magnitude_mask(splat_u32((1u << (f.bits - 1)) - 1)),
        field_shift(splat_u32(uint32_t(23 - f.man_bits))),
        sign_shift(splat_u32(uint32_t(f.bits - 1))),
        sign_position(splat_u32(31)),
        min_normal(splat_u32(1u << f.man_bits)),
        normal_rebias(splat_u32(uint32_t(127 - f.bias) << 23)),
        subnormal_rebias(splat_u32(uint32_t(128 - f.bias) << 23)),
        subnormal_offset(splat(std::ldexp(1.0f, f.emin))),
        special_from(splat_u32(0)),
        infinity_magnitude(splat_u32(0xFFFFFFFFu)) {
    const uint32_t top_binade = ((1u << f.exp_bits) - 1) << f.man_bits;
    if (f.has_inf) {
      special_from = infinity_magnitude = splat_u32(top_binade);
    } else if (f.has_nan) {
      special_from = splat_u32((1u << (f.bits - 1)) - 1);  // S.1111.111
    }
  }
  template <int kHalf>
  F32x16 decode(Codes32 c) const {
    const U32x16 code = widen<kHalf>(c);
    const U32x16 magnitude = code & magnitude_mask;
    const U32x16 sign = (code >> sign_shift) << sign_position;
    const U32x16 rebias = select_at_least(magnitude, min_normal, normal_rebias, subnormal_rebias);
    const F32x16 offset =
        as_f32(select_at_least(magnitude, min_normal, splat_u32(0), as_u32(subnormal_offset)));
    U32x16 bits = as_u32(as_f32((magnitude << field_shift) + rebias) - offset);
    if constexpr (kHasSpecials) {
      const U32x16 special = select_equal(magnitude, infinity_magnitude, splat_u32(0x7F800000u),
                                          splat_u32(0x7FC00000u));
      bits = select_at_least(magnitude, special_from, special, bits);
    }
    return as_f32(bits | sign);
  }
};

// Eight-bit integers: payload p means p * 2^-(bits - 2), exact in float32.
struct Int8Decoder {
  F32x16 quantum;
  explicit Int8Decoder(const FormatTraits& f) : quantum(splat(std::ldexp(1.0f, -f.man_bits))) {}
  template <int kHalf>
  F32x16 decode(Codes32 c) const {
    return int8_to_f32<kHalf>(c) * quantum;
  }
};

// Any format of up to eight bits, through a 256-entry table in memory (for the scalar target).
struct TableDecoder {
  float values[256] = {};
  explicit TableDecoder(const FormatTraits& f) {
    for (int c = 0; c < (1 << f.bits); ++c) values[c] = float(decode_element(f, uint8_t(c)));
  }
  template <int kHalf>
  F32x16 decode(Codes32 c) const {
    return gather(values, widen<kHalf>(c));
  }
};

template <int kBits>
using Bits = std::integral_constant<int, kBits>;

// Calls fn(Bits<bits>{}, decoder) with the decoder for format f; false for a format none of them
// covers (the caller then keeps to the per-element path).
template <class Fn>
bool with_decoder(const FormatTraits& f, Fn&& fn) {
  if (kTableLookupIsCheap && f.bits == 8) {
    fn(Bits<8>{}, TableDecoder(f));
  } else if (kTableLookupIsCheap && f.bits == 6) {
    fn(Bits<6>{}, TableDecoder(f));
  } else if (f.bits == 4) {
    fn(Bits<4>{}, LookupDecoder(f));
  } else if (f.bits == 2) {
    fn(Bits<2>{}, LookupDecoder(f));
  } else if (f.bits == 8 && f.is_integer) {
    fn(Bits<8>{}, Int8Decoder(f));
  } else if (f.bits == 8 && (f.has_inf || f.has_nan)) {
    fn(Bits<8>{}, FieldsDecoder<true>(f));
  } else if (f.bits == 6 && !f.is_integer && !f.has_inf && !f.has_nan) {
    fn(Bits<6>{}, FieldsDecoder<false>(f));
  } else {
    return false;
  }
  return true;
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
