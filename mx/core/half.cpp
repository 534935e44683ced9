#include "mx/core/half.h"

#include <cmath>

namespace mx {

float fp16_to_float(uint16_t bits) {
  const bool negative = (bits >> 15) != 0;
  const int field = (bits >> 10) & 0x1F;
  const int man = bits & 0x3FF;
  float magnitude = 0;
  if (field == 0x1F) {
    magnitude = man == 0 ? INFINITY : NAN;
  } else if (field == 0) {
    magnitude = std::ldexp(float(man), -24);
  } else {
    magnitude = std::ldexp(float(man | 0x400), field - 25);
  }
  return negative ? -magnitude : magnitude;
}

uint16_t float_to_fp16(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((abs >> 13) & 0x3FFu));
  if (abs == 0x7F800000u) return static_cast<uint16_t>(sign | 0x7C00u);
  const int field = int(abs >> 23);
  // Values from 2^16 up round to Inf whatever their mantissa (max finite is 65504).
  if (field >= 127 + 16) return static_cast<uint16_t>(sign | 0x7C00u);
  const uint32_t sig = field == 0 ? (abs & 0x7FFFFFu) : ((abs & 0x7FFFFFu) | 0x800000u);
  const int exp = (field == 0 ? 1 : field) - 150;  // |v| = sig * 2^exp
  // The binary16 quantum: 2^(e - 10) in the normal range, 2^-24 below 2^-14.
  const int e = field == 0 ? -127 : field - 127;
  const int q = (e < -14 ? -14 : e) - 10;
  const int shift = q - exp;  // > 0 always: float32 has more fraction bits
  if (shift >= 32) return sign;
  const uint32_t kept = sig >> shift;
  const uint32_t rest = sig & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  const uint32_t n = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1 : 0);
  // n quanta of 2^q: encode, letting a mantissa carry bump the exponent field.
  uint32_t code = 0;
  if (q == -24) {
    code = n;  // subnormal, or the smallest normal after a carry
  } else {
    code = (uint32_t(q + 10 + 15) << 10) + (n - 0x400u);
  }
  if (code >= 0x7C00u) code = 0x7C00u;
  return static_cast<uint16_t>(sign | code);
}

}  // namespace mx
