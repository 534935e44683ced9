// A finite float32 as an exact integer significand and a power of two: |v| = sig * 2^exp.
#pragma once

#include <bit>
#include <cstdint>

namespace mx {

struct ExactFloat {
  bool negative;
  uint32_t sig;  // 0 for zero; < 2^24
  int exp;       // |v| = sig * 2^exp
};

constexpr ExactFloat unpack_float(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const bool negative = (bits >> 31) != 0;
  const uint32_t field = (bits >> 23) & 0xFF;
  const uint32_t frac = bits & 0x7FFFFF;
  if (field == 0) return {negative, frac, -149};  // zero or subnormal
  return {negative, frac | 0x800000u, int(field) - 150};
}

// floor(log2(sig * 2^exp)) for sig > 0.
constexpr int floor_log2(const ExactFloat& x) {
  return x.exp + std::bit_width(x.sig) - 1;
}

}  // namespace mx
