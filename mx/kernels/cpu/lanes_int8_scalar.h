// Integer lanes for the matrix product's fast mode as plain loops: the definition the AVX2 and
// AVX-512 files (lanes_int8_avx2.h, lanes_int8_avx512.h) reproduce. Sixty-four bytes are the
// codes or int8 values of two consecutive blocks; a dot product gives sixteen int32 sums of four
// consecutive products.
#pragma once

#include "mx/kernels/cpu/lanes_scalar.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct I8x64 {
  int8_t v[64];
};

inline I8x64 pair_of(const Codes32& block0, const Codes32& block1) {
  I8x64 a;
  std::memcpy(a.v, block0.v, 32);
  std::memcpy(a.v + 32, block1.v, 32);
  return a;
}
inline I8x64 load_i8x64(const int8_t* p) {
  I8x64 a;
  std::memcpy(a.v, p, 64);
  return a;
}
inline I32x16 load_i32x16(const int32_t* p) {
  I32x16 a;
  std::memcpy(a.v, p, 64);
  return a;
}
inline F32x16 to_f32(const I32x16& a) {
  return lanewise<F32x16>([&](int j) { return float(a.v[j]); });
}

inline I8x64 unpack4_pair(const uint8_t* p) {
  return pair_of(unpack<4>(p), unpack<4>(p + 16));
}
inline I8x64 unpack8_pair(const uint8_t* p) {
  return load_i8x64(reinterpret_cast<const int8_t*>(p));
}

struct ByteTable16 {
  int8_t v[16];
};
inline ByteTable16 make_byte_table16(const int8_t* values) {
  ByteTable16 t;
  std::memcpy(t.v, values, 16);
  return t;
}
inline I8x64 lookup(const ByteTable16& t, const I8x64& codes) {
  I8x64 out;
  for (int i = 0; i < 64; ++i) out.v[i] = t.v[codes.v[i] & 15];
  return out;
}

struct ByteTable64 {
  int8_t v[64];
};
inline ByteTable64 make_byte_table64(const int8_t* values) {
  ByteTable64 t;
  std::memcpy(t.v, values, 64);
  return t;
}
inline I8x64 lookup(const ByteTable64& t, const I8x64& codes) {
  I8x64 out;
  for (int i = 0; i < 64; ++i) out.v[i] = t.v[codes.v[i] & 63];
  return out;
}

inline I8x64 flip_top_bits(const I8x64& a) {
  I8x64 out;
  for (int i = 0; i < 64; ++i) out.v[i] = int8_t(uint8_t(a.v[i]) ^ 0x80u);
  return out;
}

inline constexpr bool kWeightsBiasedBy128 = false;
inline I32x16 dot_quads(const I8x64& w, const I8x64& x, const I32x16&) {
  I32x16 out;
  for (int l = 0; l < 16; ++l) {
    int32_t sum = 0;
    for (int i = 4 * l; i < 4 * l + 4; ++i) sum += int32_t(w.v[i]) * int32_t(x.v[i]);
    out.v[l] = sum;
  }
  return out;
}

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
