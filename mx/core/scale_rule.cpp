#include "mx/core/scale_rule.h"

#include <bit>
#include <cmath>

#include "mx/core/e8m0.h"
#include "mx/core/exact_float.h"

namespace mx {

std::string_view scale_rule_name(ScaleRule r) {
  switch (r) {
    case ScaleRule::kFloor:
      return "floor";
    case ScaleRule::kCeil:
      return "ceil";
    case ScaleRule::kEven:
      return "even";
    case ScaleRule::kRceil:
      return "rceil";
  }
  return "?";
}

std::optional<ScaleRule> parse_scale_rule(std::string_view name) {
  for (ScaleRule r : {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil}) {
    if (name == scale_rule_name(r)) return r;
  }
  return std::nullopt;
}

namespace {

// The significand of x normalised to exactly 24 bits (leading one at bit 23).
uint32_t normalized_sig24(const ExactFloat& x) {
  return x.sig << (24 - std::bit_width(x.sig));
}

bool is_power_of_two(const ExactFloat& x) {
  return std::has_single_bit(x.sig);
}

// floor(log2(amax rounded to `man_bits` fraction bits, ties to even)).
int floor_log2_after_even_rounding(const ExactFloat& x, int man_bits) {
  const uint32_t sig = normalized_sig24(x);
  const int dropped = 23 - man_bits;
  const uint32_t kept = sig >> dropped;
  const uint32_t rest = sig & ((1u << dropped) - 1);
  const uint32_t half = 1u << (dropped - 1);
  const bool up = rest > half || (rest == half && (kept & 1u));
  const uint32_t rounded = kept + (up ? 1 : 0);
  const bool carried = rounded == (2u << man_bits);
  return floor_log2(x) + (carried ? 1 : 0);
}

// Smallest e with amax <= max_normal * 2^e, by comparing normalised significands exactly.
int rceil_exponent(const ExactFloat& amax, double max_normal) {
  int max_exp = 0;
  const double max_frac = std::frexp(max_normal, &max_exp);  // max_normal = max_frac * 2^max_exp
  const int max_floor_log2 = max_exp - 1;
  const auto max_sig24 = static_cast<uint32_t>(std::ldexp(max_frac, 24));  // exact: few bits
  const int e0 = floor_log2(amax) - max_floor_log2;
  return normalized_sig24(amax) <= max_sig24 ? e0 : e0 + 1;
}

}  // namespace

int shared_exponent_ref(const FormatTraits& format, float amax, ScaleRule rule) {
  const ExactFloat x = unpack_float(amax);
  switch (rule) {
    case ScaleRule::kFloor:
      return floor_log2(x) - format.emax;
    case ScaleRule::kCeil:
      return floor_log2(x) + (is_power_of_two(x) ? 0 : 1) - format.emax;
    case ScaleRule::kEven:
      return floor_log2_after_even_rounding(x, format.man_bits) - format.emax;
    case ScaleRule::kRceil:
      return rceil_exponent(x, format.max_normal);
  }
  return 0;
}

uint8_t scale_byte_for_exponent(int exponent) {
  if (exponent > kMaxScaleExponent) return kE8m0Nan;
  if (exponent < kMinScaleExponent) exponent = kMinScaleExponent;
  return e8m0_from_exponent(exponent);
}

}  // namespace mx
