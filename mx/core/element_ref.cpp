#include "mx/core/element_ref.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "mx/core/exact_float.h"

namespace mx {
namespace {

// A magnitude sig * 2^exp split at 2^shift: the integer part and the rounding decision.
struct Split {
  uint64_t kept;  // floor(sig / 2^shift)
  bool round_up;  // by mode
};

Split split_and_round(uint32_t sig, int shift, Rounding mode, uint32_t dither) {
  // shift > 0. The discarded part is rest / 2^shift with rest < 2^shift.
  const uint64_t kept = shift >= 32 ? 0 : uint64_t{sig} >> shift;
  const uint64_t rest = shift >= 32 ? sig : sig & ((uint64_t{1} << shift) - 1);
  // Compare rest with half = 2^(shift-1); sig < 2^24 so beyond shift 25 rest is below half.
  const int cmp_half = shift - 1 >= 32 ? -1
                                       : (rest > (uint64_t{1} << (shift - 1))    ? 1
                                          : rest == (uint64_t{1} << (shift - 1)) ? 0
                                                                                 : -1);
  bool up = false;
  switch (mode) {
    case Rounding::kNearestEven:
      up = cmp_half > 0 || (cmp_half == 0 && (kept & 1u));
      break;
    case Rounding::kNearestAway:
      up = cmp_half >= 0;
      break;
    case Rounding::kTowardZero:
      up = false;
      break;
    case Rounding::kStochastic: {
      // The top 16 bits of the discarded fraction.
      const uint64_t fraction16 = shift <= 16        ? rest << (16 - shift)
                                  : shift - 16 >= 64 ? 0
                                                     : rest >> (shift - 16);
      up = stochastic_rounds_up(uint32_t(fraction16), dither);
      break;
    }
  }
  return {kept, up};
}

uint8_t encode_magnitude_float(const FormatTraits& f, uint64_t n, int q) {
  // Magnitude n * 2^q, already within max_normal.
  if (n == 0) return 0;
  const int top = std::bit_width(n) - 1;  // n * 2^q has floor(log2) = top + q
  const int e = top + q;
  // Bring n to the element's quantum for that binade: 2^(max(e, emin) - man_bits).
  const int target_q = std::max(e, f.emin) - f.man_bits;
  const uint64_t units = target_q >= q ? n >> (target_q - q) : n << (q - target_q);
  if (e < f.emin) return static_cast<uint8_t>(units);  // subnormal: exponent field 0
  const uint64_t field = uint64_t(e + f.bias);
  return static_cast<uint8_t>((field << f.man_bits) | (units - (uint64_t{1} << f.man_bits)));
}

}  // namespace

uint8_t zero_code(const FormatTraits& f, bool negative) {
  return (negative && !f.is_integer) ? static_cast<uint8_t>(1u << (f.bits - 1)) : 0;
}

uint8_t encode_element_ref(const FormatTraits& f, float v, int scale_exp, Rounding mode,
                           uint32_t dither) {
  const ExactFloat x = unpack_float(v);
  if (x.sig == 0) return zero_code(f, x.negative);

  // |v| / 2^scale_exp = sig * 2^exp.
  const int exp = x.exp - scale_exp;
  const int y_floor_log2 = exp + std::bit_width(x.sig) - 1;
  // The quantum: fixed for integers; for floats it follows the binade, down to the subnormals.
  const int q = f.is_integer ? f.emin : std::max(y_floor_log2, f.emin) - f.man_bits;

  uint64_t n = 0;  // magnitude in quanta
  bool saturate = false;
  if (exp >= q) {
    // Already a whole number of quanta; anything this far above the quantum saturates.
    if (exp - q >= 32) {
      saturate = true;
    } else {
      n = uint64_t{x.sig} << (exp - q);
    }
  } else {
    const Split s = split_and_round(x.sig, q - exp, mode, dither);
    n = s.kept + (s.round_up ? 1 : 0);
  }
  if (!saturate) saturate = std::ldexp(double(n), q) > f.max_normal;

  uint8_t magnitude_code = 0;
  if (saturate) {
    magnitude_code = f.max_magnitude_code;
  } else if (f.is_integer) {
    magnitude_code = static_cast<uint8_t>(n);
  } else {
    magnitude_code = encode_magnitude_float(f, n, q);
  }

  if (!x.negative) return magnitude_code;
  if (f.is_integer) {
    const unsigned mask = (1u << f.bits) - 1;
    return static_cast<uint8_t>((0u - magnitude_code) & mask);
  }
  return static_cast<uint8_t>(magnitude_code | (1u << (f.bits - 1)));
}

double decode_element(const FormatTraits& f, uint8_t code) {
  const unsigned mask = (1u << f.bits) - 1;
  code &= mask;
  if (f.is_integer) {
    int payload = code;
    if (payload >= (1 << (f.bits - 1))) payload -= (1 << f.bits);  // sign-extend
    return std::ldexp(double(payload), -f.man_bits);
  }
  const bool negative = (code >> (f.bits - 1)) & 1u;
  const unsigned field = (code >> f.man_bits) & ((1u << f.exp_bits) - 1);
  const unsigned man = code & ((1u << f.man_bits) - 1);
  const unsigned max_field = (1u << f.exp_bits) - 1;
  double magnitude = 0;
  if (f.has_inf && field == max_field) {
    magnitude = man == 0 ? std::numeric_limits<double>::infinity()
                         : std::numeric_limits<double>::quiet_NaN();
  } else if (f.has_nan && !f.has_inf && field == max_field && man == (1u << f.man_bits) - 1) {
    magnitude = std::numeric_limits<double>::quiet_NaN();
  } else if (field == 0) {
    magnitude = std::ldexp(double(man), f.emin - f.man_bits);
  } else {
    magnitude = std::ldexp(double(man + (1u << f.man_bits)), int(field) - f.bias - f.man_bits);
  }
  return negative ? -magnitude : magnitude;
}

}  // namespace mx
