// Sixteen-lane vectors as plain arrays, for the scalar target: the same types and functions as
// lanes_avx512.h, written as loops over lanes (which the compiler may vectorise with SSE2).
// This file is also the easiest statement of what each SIMD function computes.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "mx/core/half.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct F32x16 {
  float v[16];
};
struct U32x16 {
  uint32_t v[16];
};
struct I32x16 {
  int32_t v[16];
};
struct Codes32 {
  uint8_t v[32];
};

template <class V, class Fn>
inline V lanewise(Fn fn) {
  V out;
  for (int j = 0; j < 16; ++j) out.v[j] = fn(j);
  return out;
}

inline F32x16 splat(float x) {
  return lanewise<F32x16>([&](int) { return x; });
}
inline U32x16 splat_u32(uint32_t x) {
  return lanewise<U32x16>([&](int) { return x; });
}
inline F32x16 splat_halves(float low, float high) {
  return lanewise<F32x16>([&](int j) { return j < 8 ? low : high; });
}
inline F32x16 operator*(F32x16 a, F32x16 b) {
  return lanewise<F32x16>([&](int j) { return a.v[j] * b.v[j]; });
}
inline F32x16 operator+(F32x16 a, F32x16 b) {
  return lanewise<F32x16>([&](int j) { return a.v[j] + b.v[j]; });
}
// a * b + c rounded once, as the fused multiply-add instructions do.
inline F32x16 fused_mul_add(F32x16 a, F32x16 b, F32x16 c) {
  return lanewise<F32x16>([&](int j) { return std::fma(a.v[j], b.v[j], c.v[j]); });
}

// A hint to bring the cache line holding p into the caches; it never faults.
inline void prefetch(const void* p) {
  __builtin_prefetch(p, 0, 2);
}
inline F32x16 load_f32(const float* p) {
  F32x16 a;
  std::memcpy(a.v, p, sizeof(a.v));
  return a;
}
inline void store_f32(float* p, F32x16 a) {
  std::memcpy(p, a.v, sizeof(a.v));
}
// The first n (1 to 16) lanes of a vector, for a row's part that may not fill one: the other
// lanes load as zeros, and their memory is neither read nor written.
struct PartMask {
  int n;
};
inline PartMask part_mask(int n) {
  return {n};
}
inline F32x16 load_f32_part(const float* p, PartMask m) {
  F32x16 a = {};
  std::memcpy(a.v, p, size_t(m.n) * sizeof(float));
  return a;
}
inline void store_f32_part(float* p, F32x16 a, PartMask m) {
  std::memcpy(p, a.v, size_t(m.n) * sizeof(float));
}

// Lane r of m[q] and lane q of m[r] trade places: sixteen rows become sixteen columns.
inline void transpose16(F32x16 (&m)[16]) {
  for (int q = 0; q < 16; ++q) {
    for (int r = q + 1; r < 16; ++r) std::swap(m[q].v[r], m[r].v[q]);
  }
}

// Lane j is added to lane j + 8, then j + 4, j + 2, j + 1.
inline float sum_lanes(F32x16 a) {
  for (int width = 8; width >= 1; width /= 2) {
    for (int j = 0; j < width; ++j) a.v[j] = a.v[j] + a.v[j + width];
  }
  return a.v[0];
}

inline U32x16 operator&(U32x16 a, U32x16 b) {
  return lanewise<U32x16>([&](int j) { return a.v[j] & b.v[j]; });
}
inline U32x16 operator>>(U32x16 a, U32x16 count) {
  return lanewise<U32x16>([&](int j) { return a.v[j] >> count.v[j]; });
}

// A block's codes as pairs, lane j holding codes 2j and 2j + 1: from 4-bit packing directly
// (byte j is code 2j | code 2j + 1 << 4), or from unpacked codes (code 2j | code 2j + 1 << 8).
inline U32x16 widen_bytes(const uint8_t* p) {
  return lanewise<U32x16>([&](int j) { return uint32_t(p[j]); });
}
inline U32x16 widen_pairs(const Codes32& c) {
  return lanewise<U32x16>(
      [&](int j) { return uint32_t(c.v[2 * j]) | uint32_t(c.v[2 * j + 1]) << 8; });
}
// Byte kByte (0 or 1) of each lane as a two's-complement integer, in float32.
template <int kByte>
inline F32x16 int8_to_f32(U32x16 pairs) {
  return lanewise<F32x16>([&](int j) { return float(int8_t(uint8_t(pairs.v[j] >> (8 * kByte)))); });
}

struct Table16 {
  float v[16];
};
inline Table16 make_table16(const float* values) {
  Table16 t;
  std::memcpy(t.v, values, sizeof(t.v));
  return t;
}
inline Table16 scaled(const Table16& t, F32x16 factor) {
  Table16 out;
  for (int j = 0; j < 16; ++j) out.v[j] = t.v[j] * factor.v[j];
  return out;
}
inline F32x16 lookup(const Table16& t, U32x16 index) {
  return lanewise<F32x16>([&](int j) { return t.v[index.v[j] & 15]; });
}

// Without vector registers, a table in memory is the quickest decoder for every format.
inline constexpr bool kDecodesInRegisters = false;
inline F32x16 gather(const float* table, U32x16 index) {
  return lanewise<F32x16>([&](int j) { return table[index.v[j]]; });
}

// ---------------------------------------------------------------------------------------------
// Output: 64 bytes at a time, through PlainStores or StreamingStores.

struct Bytes64 {
  uint8_t v[64];
};

template <int kHalf>
inline Bytes64 f32_half(const F32x16& even, const F32x16& odd) {
  float out[16];
  for (int j = 0; j < 8; ++j) {
    out[2 * j] = even.v[8 * kHalf + j];
    out[2 * j + 1] = odd.v[8 * kHalf + j];
  }
  Bytes64 b;
  std::memcpy(b.v, out, 64);
  return b;
}
inline Bytes64 f32_first_half(const F32x16& even, const F32x16& odd) {
  return f32_half<0>(even, odd);
}
inline Bytes64 f32_second_half(const F32x16& even, const F32x16& odd) {
  return f32_half<1>(even, odd);
}
inline Bytes64 bf16_pairs(const F32x16& even, const F32x16& odd) {
  uint16_t out[32];
  for (int j = 0; j < 16; ++j) {
    out[2 * j] = float_to_bf16(even.v[j]);
    out[2 * j + 1] = float_to_bf16(odd.v[j]);
  }
  Bytes64 b;
  std::memcpy(b.v, out, 64);
  return b;
}
inline Bytes64 bf16_pairs_truncated(const F32x16& even, const F32x16& odd) {
  uint16_t out[32];
  for (int j = 0; j < 16; ++j) {
    out[2 * j] = uint16_t(std::bit_cast<uint32_t>(even.v[j]) >> 16);
    out[2 * j + 1] = uint16_t(std::bit_cast<uint32_t>(odd.v[j]) >> 16);
  }
  Bytes64 b;
  std::memcpy(b.v, out, 64);
  return b;
}

struct PlainStores {
  void put(void* p, const Bytes64& b) const { std::memcpy(p, b.v, 64); }
};
using StreamingStores = PlainStores;  // no non-temporal stores without vector registers

inline Codes32 zero_codes() {
  return Codes32{};
}

// Unpacking a block's codes from the little-endian bit stream of mx/core/bitpack.h.
template <int kBits>
inline Codes32 unpack(const uint8_t* p) {
  static_assert(kBits == 8 || kBits == 6 || kBits == 4 || kBits == 2);
  Codes32 c;
  if constexpr (kBits == 8) {
    std::memcpy(c.v, p, 32);
  } else if constexpr (kBits == 6) {
    for (int g = 0; g < 8; ++g) {
      const uint32_t w =
          uint32_t(p[3 * g]) | uint32_t(p[3 * g + 1]) << 8 | uint32_t(p[3 * g + 2]) << 16;
      for (int i = 0; i < 4; ++i) c.v[4 * g + i] = uint8_t((w >> (6 * i)) & 63);
    }
  } else {
    constexpr int kPerByte = 8 / kBits;
    for (int i = 0; i < 32; ++i) {
      c.v[i] = uint8_t((p[i / kPerByte] >> (kBits * (i % kPerByte))) & ((1 << kBits) - 1));
    }
  }
  return c;
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
