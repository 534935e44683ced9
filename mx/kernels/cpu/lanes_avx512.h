// Sixteen-lane vectors on AVX-512 (F, BW, VL, DQ): one zmm register per vector. lanes_avx2.h
// and lanes_scalar.h define the same types and functions for the other targets, so the kernels
// written against them (element_decoders.h, dequantize_fast.h, matmul_impl.h) are written once.
// Every function here is exact integer or IEEE float32 arithmetic, lane by lane, with the same
// result on every target; the float sums are in the order the comments state.
//
// A block's 32 elements sit in two vectors as pairs: lane j of `even` holds element 2j, lane j
// of `odd` element 2j + 1. Packed codes come apart that way with the fewest shuffles.
#pragma once

// GCC 12 reports the unused pass-through operand of unmasked AVX-512 intrinsics as "(may be)
// used uninitialized" (GCC bug 105593). The warning is tied to the intrinsic headers' lines, so
// it is silenced for them alone, here, where they are first included.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

#include <cstdint>

#include "mx/kernels/cpu/unpack_codes_x86.h"

namespace mx::cpu::detail::MX_CPU_ISA {
namespace {

struct F32x16 {
  __m512 v;
};
struct U32x16 {
  __m512i v;
};
struct I32x16 {
  __m512i v;
};

inline F32x16 splat(float x) {
  return {_mm512_set1_ps(x)};
}
inline U32x16 splat_u32(uint32_t x) {
  return {_mm512_set1_epi32(int(x))};
}
// Lanes 0-7 hold `low`, lanes 8-15 `high`.
inline F32x16 splat_halves(float low, float high) {
  return {_mm512_insertf32x8(_mm512_set1_ps(low), _mm256_set1_ps(high), 1)};
}
inline F32x16 operator*(F32x16 a, F32x16 b) {
  return {_mm512_mul_ps(a.v, b.v)};
}
inline F32x16 operator+(F32x16 a, F32x16 b) {
  return {_mm512_add_ps(a.v, b.v)};
}
// a * b + c rounded once (a fused multiply-add).
inline F32x16 fused_mul_add(F32x16 a, F32x16 b, F32x16 c) {
  return {_mm512_fmadd_ps(a.v, b.v, c.v)};
}

// A hint to bring the cache line holding p into the caches; it never faults.
inline void prefetch(const void* p) {
  _mm_prefetch(static_cast<const char*>(p), _MM_HINT_T1);
}
inline F32x16 load_f32(const float* p) {
  return {_mm512_loadu_ps(p)};
}
inline void store_f32(float* p, F32x16 a) {
  _mm512_storeu_ps(p, a.v);
}
// The first n (1 to 16) lanes of a vector, for a row's part that may not fill one: loads read
// zeros into the other lanes and touch no memory there; stores leave it untouched.
using PartMask = __mmask16;
inline PartMask part_mask(int n) {
  return __mmask16((1u << n) - 1);
}
inline F32x16 load_f32_part(const float* p, PartMask m) {
  return {_mm512_maskz_loadu_ps(m, p)};
}
inline void store_f32_part(float* p, F32x16 a, PartMask m) {
  _mm512_mask_storeu_ps(p, m, a.v);
}

// Lane r of m[q] and lane q of m[r] trade places (as lanes_scalar.h). Within each 128-bit lane,
// pairs then quadruples of rows interleave; then whole 128-bit lanes move, twice.
inline void transpose16(F32x16 (&m)[16]) {
  __m512 quad[16];  // quad[4g + c], 128-bit lane l: column 4l + c of rows 4g..4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512 r0 = m[4 * g].v, r1 = m[4 * g + 1].v, r2 = m[4 * g + 2].v, r3 = m[4 * g + 3].v;
    const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(r0, r1));
    const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(r0, r1));
    const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(r2, r3));
    const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(r2, r3));
    quad[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    quad[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    quad[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    quad[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    // Lanes (0, 2) and (1, 3) of the row groups (0, 1) and (2, 3), then gathered by lane.
    const __m512 even01 = _mm512_shuffle_f32x4(quad[c], quad[4 + c], 0x88);
    const __m512 odd01 = _mm512_shuffle_f32x4(quad[c], quad[4 + c], 0xDD);
    const __m512 even23 = _mm512_shuffle_f32x4(quad[8 + c], quad[12 + c], 0x88);
    const __m512 odd23 = _mm512_shuffle_f32x4(quad[8 + c], quad[12 + c], 0xDD);
    m[c].v = _mm512_shuffle_f32x4(even01, even23, 0x88);
    m[8 + c].v = _mm512_shuffle_f32x4(even01, even23, 0xDD);
    m[4 + c].v = _mm512_shuffle_f32x4(odd01, odd23, 0x88);
    m[12 + c].v = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);
  }
}

// ((l0 + l8) + (l4 + l12)) + ... : lane j is added to lane j + 8, then j + 4, j + 2, j + 1.
inline float sum_lanes(F32x16 a) {
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

inline U32x16 operator&(U32x16 a, U32x16 b) {
  return {_mm512_and_si512(a.v, b.v)};
}
inline U32x16 operator>>(U32x16 a, U32x16 count) {
  return {_mm512_srlv_epi32(a.v, count.v)};
}

// A block's codes as pairs, lane j holding codes 2j and 2j + 1. From 4-bit packing directly
// (byte j is code 2j | code 2j + 1 << 4), or from unpacked codes (code 2j | code 2j + 1 << 8).
inline U32x16 widen_bytes(const uint8_t* p) {
  return {_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
}
inline U32x16 widen_pairs(Codes32 c) {
  return {_mm512_cvtepu16_epi32(c.v)};
}
// Byte kByte (0 or 1) of each lane as a two's-complement integer, in float32 (exact).
template <int kByte>
inline F32x16 int8_to_f32(U32x16 pairs) {
  const __m512i on_top = _mm512_slli_epi32(pairs.v, 24 - 8 * kByte);
  return {_mm512_cvtepi32_ps(_mm512_srai_epi32(on_top, 24))};
}

// A block's codes one per 16-bit lane (AVX-512 only: the FP6/FP8 word-table decoder's input).
// Six-bit codes straddle 16-bit words: code i sits at bits [6i, 6i + 6) of the block, so it is
// the low six bits of (word w >> s) | (word w + 1 << (16 - s)) with w = 6i / 16, s = 6i % 16;
// two vpermw fetch those words for all 32 codes at once, and per-lane shifts align them.
struct SixBitWindows {
  alignas(64) uint16_t word[32];
  alignas(64) uint16_t shift[32];
};
inline constexpr SixBitWindows kSixBitWindows = [] {
  SixBitWindows t{};
  for (int i = 0; i < 32; ++i) {
    t.word[i] = uint16_t(6 * i / 16);
    t.shift[i] = uint16_t(6 * i % 16);
  }
  return t;
}();
template <int kBits>
inline __m512i code_words(const uint8_t* block) {
  static_assert(kBits == 8 || kBits == 6);
  if constexpr (kBits == 8) {
    return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(block)));
  } else {
    const __m512i words = _mm512_maskz_loadu_epi16(0x0FFF, block);  // the block's 24 bytes
    const __m512i first = _mm512_load_si512(kSixBitWindows.word);
    const __m512i shift = _mm512_load_si512(kSixBitWindows.shift);
    const __m512i low = _mm512_permutexvar_epi16(first, words);
    const __m512i high =
        _mm512_permutexvar_epi16(_mm512_add_epi16(first, _mm512_set1_epi16(1)), words);
    const __m512i high_shift = _mm512_sub_epi16(_mm512_set1_epi16(16), shift);
    const __m512i joined =
        _mm512_or_si512(_mm512_srlv_epi16(low, shift), _mm512_sllv_epi16(high, high_shift));
    return _mm512_and_si512(joined, _mm512_set1_epi16(63));
  }
}

// Sixteen float32 values indexed by the low four bits of each lane (higher bits are ignored):
// one vpermps.
struct Table16 {
  __m512 v;
};
inline Table16 make_table16(const float* values) {
  return {_mm512_loadu_ps(values)};
}
inline Table16 scaled(const Table16& t, F32x16 factor) {
  return {_mm512_mul_ps(t.v, factor.v)};
}
inline F32x16 lookup(const Table16& t, U32x16 index) {
  return {_mm512_permutexvar_ps(index.v, t.v)};
}

// Decoding in registers beats a table in memory (element_decoders.h).
inline constexpr bool kDecodesInRegisters = true;
// table[index] per lane (vgatherdps); element_decoders.h prefers register tables here.
inline F32x16 gather(const float* table, U32x16 index) {
  return {_mm512_i32gather_ps(index.v, table, 4)};
}

// ---------------------------------------------------------------------------------------------
// Output: 64 bytes at a time, through PlainStores or StreamingStores.

struct Bytes64 {
  __m512i v;
};

// 32 float32 values given as pairs, in element order: elements 0-15, then 16-31.
inline Bytes64 f32_first_half(F32x16 even, F32x16 odd) {
  const __m512i index = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  return {_mm512_castps_si512(_mm512_permutex2var_ps(even.v, index, odd.v))};
}
inline Bytes64 f32_second_half(F32x16 even, F32x16 odd) {
  const __m512i index =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  return {_mm512_castps_si512(_mm512_permutex2var_ps(even.v, index, odd.v))};
}

// float_to_bf16 (mx/core/half.h) on every lane, into the low 16 bits: round to nearest even,
// NaN stays a quiet NaN.
inline __m512i bf16_rounded(F32x16 a) {
  const __m512i bits = _mm512_castps_si512(a.v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  const __m512i rounding = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, rounding), 16);
  const __m512i magnitude = _mm512_and_si512(bits, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7F800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
  return _mm512_mask_blend_epi32(nan, rounded, quiet);
}
// 32 values given as pairs, as bfloat16 in element order: lane j's pair is 32-bit word j.
inline Bytes64 bf16_pairs(F32x16 even, F32x16 odd) {
  const __m512i odd_high = _mm512_slli_epi32(bf16_rounded(odd), 16);
  return {_mm512_or_si512(bf16_rounded(even), odd_high)};
}
// The same for values that are bfloat16 values already: their top halves.
inline Bytes64 bf16_pairs_truncated(F32x16 even, F32x16 odd) {
  const __m512i even_low = _mm512_srli_epi32(_mm512_castps_si512(even.v), 16);
  const __m512i odd_high = _mm512_and_si512(_mm512_castps_si512(odd.v), _mm512_set1_epi32(-65536));
  return {_mm512_or_si512(even_low, odd_high)};
}

// Ordinary stores, 64 bytes at any address.
struct PlainStores {
  void put(void* p, Bytes64 b) const { _mm512_storeu_si512(p, b.v); }
};

// Stores for a large output, 64 bytes at a time, mostly to consecutive addresses. Every 64-byte
// line a run of consecutive puts covers wholly is written with a non-temporal store: it skips
// the read for ownership that an ordinary store makes of a line it does not hold, and bypasses
// the caches, so the output costs half the memory traffic. The partial lines at a run's two ends
// get ordinary masked stores. An output that is not 64-byte aligned is shifted onto the lines
// through a register that carries each vector's last bytes over to the next line (addresses
// must be even). Kept apart from PlainStores: state that a loop's stores might alias stays in
// memory, and costs the ordinary path more than it saves.
class StreamingStores {
 public:
  StreamingStores() = default;
  StreamingStores(const StreamingStores&) = delete;
  StreamingStores& operator=(const StreamingStores&) = delete;
  // Ends the last run and orders the non-temporal stores before whatever the thread does next.
  ~StreamingStores() {
    end_run();
    _mm_sfence();
  }

  void put(void* p, Bytes64 b) {
    if (p != next_) start_run(static_cast<uint8_t*>(p));
    if (offset_ == 0) {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(next_), b.v);
    } else if (!carrying_) {  // the run's first, partial line: bytes [0, 64 - offset)
      _mm512_mask_storeu_epi8(next_, ~uint64_t{0} >> offset_, b.v);
      carrying_ = true;
    } else {
      _mm512_stream_si512(reinterpret_cast<__m512i*>(next_ - offset_),
                          _mm512_permutex2var_epi16(carry_, realign_, b.v));
    }
    carry_ = b.v;
    next_ += 64;
  }

 private:
  void start_run(uint8_t* p) {
    end_run();
    next_ = p;
    offset_ = int(reinterpret_cast<uintptr_t>(p) & 63);
    // Line word i is word i + 32 - offset / 2 of (carry, vector).
    const __m512i words =
        _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                         12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    realign_ = _mm512_add_epi16(words, _mm512_set1_epi16(int16_t(32 - offset_ / 2)));
  }
  void end_run() {
    if (carrying_) {  // the last vector's bytes [64 - offset, 64) start the run's last line
      const __m512i tail = _mm512_permutex2var_epi16(carry_, realign_, carry_);
      _mm512_mask_storeu_epi8(next_ - offset_, ~uint64_t{0} >> (64 - offset_), tail);
      carrying_ = false;
    }
    next_ = nullptr;
  }

  uint8_t* next_ = nullptr;
  int offset_ = 0;
  bool carrying_ = false;
  __m512i carry_ = _mm512_setzero_si512();
  __m512i realign_ = _mm512_setzero_si512();
};

}  // namespace
}  // namespace mx::cpu::detail::MX_CPU_ISA
