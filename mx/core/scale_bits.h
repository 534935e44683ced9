// The shared exponent from the float32 bits of a block's amax, on integers: the fast paths' form
// of shared_exponent_ref (mx/core/scale_rule.h), written once for the CPU and, through
// constexpr, the CUDA kernels. Tested equal to the reference by both paths' byte comparisons.
#pragma once

#include <bit>
#include <cstdint>

#include "mx/core/scale_rule.h"

namespace mx {

constexpr int bit_width32(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return 32 - __clz(x);
#else
  return std::bit_width(x);
#endif
}

// amax_bits: a finite, nonzero float32. Format is any struct with the element format's
// man_bits and emax, and max_normal's float32 bits split into floor(log2) (max_floor_log2) and
// the 24-bit significand (max_sig24).
template <class Format>
constexpr int shared_exponent_from_bits(const Format& p, uint32_t amax_bits, ScaleRule rule) {
  const uint32_t field = amax_bits >> 23;
  const uint32_t frac = amax_bits & 0x7FFFFFu;
  int floor_log2 = 0;
  uint32_t sig24 = 0;
  if (field != 0) {
    floor_log2 = int(field) - 127;
    sig24 = frac | 0x800000u;
  } else {
    const int width = bit_width32(frac);
    floor_log2 = width - 150;
    sig24 = frac << (24 - width);
  }
  switch (rule) {
    case ScaleRule::kFloor:
      return floor_log2 - p.emax;
    case ScaleRule::kCeil:
      return floor_log2 + (sig24 != 0x800000u ? 1 : 0) - p.emax;
    case ScaleRule::kEven: {
      const int dropped = 23 - p.man_bits;
      const uint32_t kept = sig24 >> dropped;
      const uint32_t rest = sig24 & ((1u << dropped) - 1);
      const uint32_t half = 1u << (dropped - 1);
      const uint32_t rounded = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1 : 0);
      return floor_log2 + (rounded == (2u << p.man_bits) ? 1 : 0) - p.emax;
    }
    case ScaleRule::kRceil: {
      const int e0 = floor_log2 - p.max_floor_log2;
      return sig24 <= p.max_sig24 ? e0 : e0 + 1;
    }
  }
  return 0;
}

}  // namespace mx
