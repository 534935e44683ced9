// An independent model of MX element rounding and scale selection, for testing the reference.
//
// It shares no code with mx/core's codec: it lists every code of a format with its value,
// computed from the format's definition, and chooses a result by comparing distances in double
// precision (in the spirit of TestFloat's slowfloat). Scale rules are computed with frexp and
// double arithmetic instead of integer bit manipulation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mx/core/format.h"
#include "mx/core/rounding.h"
#include "mx/core/scale_rule.h"

namespace mx::testing {

// Value of a magnitude code (sign bit clear) straight from the format definition, or NaN for
// codes that are NaN or Inf.
inline double oracle_magnitude(const FormatTraits& f, unsigned code) {
  if (f.is_integer) return std::ldexp(double(code), -(f.bits - 2));
  const unsigned field = code >> f.man_bits;
  const unsigned man = code & ((1u << f.man_bits) - 1);
  const unsigned all_ones = (1u << f.exp_bits) - 1;
  if (f.has_inf && field == all_ones) return NAN;  // E5M2: Inf and NaN
  if (f.has_nan && !f.has_inf && field == all_ones && man == (1u << f.man_bits) - 1) return NAN;
  const int bias = (1 << (f.exp_bits - 1)) - 1;
  if (field == 0) return std::ldexp(double(man), 1 - bias - f.man_bits);
  return std::ldexp(double(man) + std::ldexp(1.0, f.man_bits), int(field) - bias - f.man_bits);
}

struct OracleFormat {
  const FormatTraits* f;
  std::vector<double> magnitudes;  // finite magnitudes, ascending; index = magnitude code
};

inline OracleFormat oracle_format(const FormatTraits& f) {
  OracleFormat o{&f, {}};
  // Magnitude codes are the codes with the sign bit clear; for integers the positive payloads.
  const unsigned count = 1u << (f.bits - 1);
  for (unsigned c = 0; c < count; ++c) {
    const double v = oracle_magnitude(f, c);
    if (std::isnan(v)) break;  // special codes sit at the top
    o.magnitudes.push_back(v);
  }
  return o;
}

// The code for x (any finite double, already divided by the scale) under `mode`; for
// stochastic rounding `dither` is the element's 16-bit draw.
inline uint8_t oracle_encode(const OracleFormat& o, double x, Rounding mode, uint32_t dither = 0) {
  const FormatTraits& f = *o.f;
  const bool negative = std::signbit(x);
  const double a = std::fabs(x);
  const auto& m = o.magnitudes;
  unsigned code = 0;
  if (a >= m.back()) {
    code = unsigned(m.size() - 1);  // saturate, every mode
  } else {
    const unsigned lo = unsigned(std::upper_bound(m.begin(), m.end(), a) - m.begin() - 1);
    const double dlo = a - m[lo], dhi = m[lo + 1] - a;
    bool up = false;
    switch (mode) {
      case Rounding::kNearestEven: {
        // A tie goes to the candidate that is an even multiple of the gap between them. For
        // formats with mantissa bits this is the even code; for E3M0 (no mantissa bits) the
        // tie 1.5 * 2^k goes to 2^(k+1).
        const double gap = m[lo + 1] - m[lo];
        const bool lo_is_even_multiple = std::fmod(m[lo] / gap, 2.0) == 0.0;
        up = dhi < dlo || (dhi == dlo && !lo_is_even_multiple);
        break;
      }
      case Rounding::kNearestAway:
        up = dhi <= dlo;
        break;
      case Rounding::kTowardZero:
        up = false;
        break;
      case Rounding::kStochastic: {
        // The gap is a power of two, so the fraction and its scaling by 2^16 are exact.
        const double fraction16 = std::floor(dlo / (m[lo + 1] - m[lo]) * 65536.0);
        up = fraction16 + double(dither) >= 65536.0;
        break;
      }
    }
    code = lo + (up ? 1 : 0);
  }
  if (!negative) return uint8_t(code);
  if (f.is_integer) return uint8_t((0u - code) & ((1u << f.bits) - 1));
  return uint8_t(code | (1u << (f.bits - 1)));
}

// floor((a - lo) / gap * 2^16) for the stochastic oracle's boundary tests; 0 if a saturates or
// is representable.
inline uint32_t oracle_fraction16(const OracleFormat& o, double x) {
  const double a = std::fabs(x);
  const auto& m = o.magnitudes;
  if (a >= m.back()) return 0;
  const size_t lo = size_t(std::upper_bound(m.begin(), m.end(), a) - m.begin() - 1);
  return uint32_t(std::floor((a - m[lo]) / (m[lo + 1] - m[lo]) * 65536.0));
}

// Shared exponent of a block with largest magnitude `amax` (> 0, finite), by the rule's
// mathematical definition.
inline int oracle_shared_exponent(const FormatTraits& f, double amax, ScaleRule rule) {
  int e = 0;
  const double frac = std::frexp(amax, &e);  // amax = frac * 2^e, frac in [0.5, 1)
  const int floor_log2 = e - 1;
  switch (rule) {
    case ScaleRule::kFloor:
      return floor_log2 - f.emax;
    case ScaleRule::kCeil:
      return (frac == 0.5 ? floor_log2 : floor_log2 + 1) - f.emax;
    case ScaleRule::kEven: {
      const double scaled = std::ldexp(frac * 2, f.man_bits);  // mantissa in [2^mb, 2^(mb+1))
      const double rounded = std::nearbyint(scaled);           // ties to even (default mode)
      return (rounded == std::ldexp(1.0, f.man_bits + 1) ? floor_log2 + 1 : floor_log2) - f.emax;
    }
    case ScaleRule::kRceil: {
      int s = int(std::ceil(std::log2(amax / f.max_normal)));
      while (amax > std::ldexp(f.max_normal, s)) ++s;
      while (amax <= std::ldexp(f.max_normal, s - 1)) --s;
      return s;
    }
  }
  return 0;
}

}  // namespace mx::testing
