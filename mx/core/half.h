// BFloat16 and IEEE binary16: the formats of the element-wise "vector ops" and of 16-bit inputs.
// Conversions from float32 round to nearest, ties to even; overflow gives ±Inf, NaN stays NaN
// (quiet, sign kept), as IEEE 754 conversion does.
#pragma once

#include <bit>
#include <cstdint>

namespace mx {

constexpr float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(uint32_t{bits} << 16);
}

constexpr uint16_t float_to_bf16(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// Rounds a float32 to the nearest bfloat16 value, kept as float32.
constexpr float round_to_bf16(float v) {
  return bf16_to_float(float_to_bf16(v));
}

float fp16_to_float(uint16_t bits);
uint16_t float_to_fp16(float v);
inline float round_to_fp16(float v) {
  return fp16_to_float(float_to_fp16(v));
}

}  // namespace mx
