// The E8M0 shared scale: an unsigned biased exponent, bias 127. Bytes 0x00..0xFE mean
// 2^-127..2^127; 0xFF is NaN. There is no zero and no infinity.
#pragma once

#include <bit>
#include <cstdint>
#include <limits>

namespace mx {

inline constexpr int kE8m0Bias = 127;
inline constexpr uint8_t kE8m0Nan = 0xFF;
inline constexpr int kMinScaleExponent = -127;
inline constexpr int kMaxScaleExponent = 127;

// Exponent in [-127, 127] -> byte. The caller clamps first.
constexpr uint8_t e8m0_from_exponent(int exponent) {
  return static_cast<uint8_t>(exponent + kE8m0Bias);
}

constexpr int e8m0_exponent(uint8_t byte) {
  return int(byte) - kE8m0Bias;
}

// Byte -> float32. Byte 0 is the float32 subnormal 2^-127 (bits 0x00400000), not the 0.0 that a
// plain `byte << 23` would give; 0xFF is NaN, not the Inf that shift would give.
constexpr float e8m0_to_float(uint8_t byte) {
  if (byte == kE8m0Nan) return std::numeric_limits<float>::quiet_NaN();
  if (byte == 0) return std::bit_cast<float>(uint32_t{0x00400000});
  return std::bit_cast<float>(uint32_t{byte} << 23);
}

}  // namespace mx
