// Decoding one lane's 32 codes of a weight tile (mx/core/layout_weight_tiles.h) to the 16
// scaled bfloat16 pairs of its four m16n8k16 A fragments. Pair p = 8b + 4s + 2i + h belongs to
// tile row r + 8h and block b, so its scale is byte 2b + h of the lane's 32-bit scale word.
//
// E2M1 has a path of its own, because MXFP4 weights are what small-batch inference reads most:
// the tile layout puts each pair's bits where a shift and a mask turn them into the bfloat16
// pair of x * 2^-126 (sign at bit 15, exponent and mantissa at bits 6-8; subnormal 0.5 lands on
// bfloat16's subnormal 2^-127, so no code needs a special case), and one multiply by 2^(s - 1)
// finishes the pair. Every other format, and E2M1 blocks with scale bytes above 128 (a factor
// past 2^127) or NaN scales, goes through the general decoder of mx_decode.cuh.
#pragma once

#include <cstdint>

#include "mx/kernels/cuda/mx_decode.cuh"

namespace mx::cuda {

// The codes of pair slot j of a 4-bit lane word in the low four bits of each 16-bit half.
__device__ __forceinline__ uint32_t nibble_pair(uint32_t w, int j) {
  switch (j) {
    case 0:
      return ((w >> 6) & 0x00070007u) | ((w >> 12) & 0x00080008u);
    case 1:
      return ((w >> 3) & 0x00070007u) | ((w >> 9) & 0x00080008u);
    case 2:
      return (w & 0x00070007u) | ((w >> 6) & 0x00080008u);
    default:
      return ((w >> 10) & 0x00030003u) | ((w >> 11) & 0x000C000Cu);
  }
}

// The bfloat16 pair of x * 2^-126 for the E2M1 codes of slot j.
__device__ __forceinline__ uint32_t e2m1_pair(uint32_t w, int j) {
  constexpr uint32_t kBf16Bits = 0x81C081C0u;  // sign and bits 6-8 of both halves
  switch (j) {
    case 0:
      return w & kBf16Bits;
    case 1:
      return (w << 3) & kBf16Bits;
    case 2:
      return (w << 6) & kBf16Bits;
    default:
      return ((w >> 4) & 0x00C000C0u) | ((w >> 5) & 0x01000100u) | ((w << 1) & 0x80008000u);
  }
}

// The lane's codes as pairs in the order decode_values expects (pair p in the low bits of
// each half for 4-bit codes; the storage order itself for the other widths).
template <int kBits>
__device__ __forceinline__ void lane_words(const uint32_t (&codes)[kBits], uint32_t (&w)[8]) {
#pragma unroll
  for (int i = 0; i < 8; ++i) w[i] = 0;
  if constexpr (kBits == 4) {
    // Rebuild storage order: pair p = 4v + j holds codes 2p and 2p + 1, word p / 4 of storage
    // order holding codes 8(p / 4) .. (one word per four pairs).
#pragma unroll
    for (int v = 0; v < 4; ++v) {
      uint32_t stored = 0;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const uint32_t pair = nibble_pair(codes[v], j);
        stored |= ((pair & 0xFu) | ((pair >> 12) & 0xF0u)) << (8 * j);
      }
      w[v] = stored;
    }
  } else {
#pragma unroll
    for (int i = 0; i < kBits; ++i) w[i] = codes[i];
  }
}

// True when no byte of `scales` is above 128: then 2^(s - 1), the E2M1 factor, is at most 2^127
// and finite for all four.
__device__ __forceinline__ bool e2m1_scales_fit(uint32_t scales) {
  return ((((scales & 0x7F7F7F7Fu) + 0x7F7F7F7Fu) & scales & 0x80808080u)) == 0;
}

// E2M1 lane with every scale byte at most 128: five integer operations per word of four pairs
// on average, and one multiply per pair.
__device__ __forceinline__ void decode_e2m1_lane(const uint32_t (&codes)[4], uint32_t scales,
                                                 uint32_t (&out)[16]) {
  uint32_t factor[4];  // 2^(s - 1) in both halves: exponent field s + 126
#pragma unroll
  for (int j = 0; j < 4; ++j)
    factor[j] = __byte_perm(scales, 0, 0x4040 + 0x0101 * j) * 128u + 0x3F003F00u;
#pragma unroll
  for (int p = 0; p < 16; ++p) {
    out[p] = bf16x2_mul(e2m1_pair(codes[p / 4], p % 4), factor[2 * (p / 8) + p % 2]);
  }
}

// Any format and any scales, exactly (the rules of decode_any_block): special FP8 codes, NaN
// scales, factors above 2^127. Called by the whole warp: when every lane's tile is plain (no
// special code, finite factors up to 2^127) it takes one multiply per pair without a branch.
template <int kBits>
__device__ __forceinline__ void decode_lane_any(const uint32_t (&codes)[kBits], uint32_t scales,
                                                const DecodeFormat& f, uint32_t (&out)[16]) {
  uint32_t w[8];
  lane_words<kBits>(codes, w);
  decode_values<kBits>(w, f, out);
  bool special = false;
  if constexpr (kBits == 8) {
    if (f.kind == DecodeKind::kE4M3 || f.kind == DecodeKind::kE5M2) {
      special = has_special_fp8(w, f.kind == DecodeKind::kE4M3 ? 1u : 4u);
    }
  }
  int e[4];
  bool plain = !special;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const uint32_t s = (scales >> (8 * j)) & 0xFFu;
    e[j] = scale_exponent<kBits>(s, f);
    plain = plain && s != 0xFFu && e[j] <= 127;
  }
  if (__all_sync(0xFFFFFFFFu, plain)) {
    uint32_t factor[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) factor[j] = bf16_pow2_pair(e[j]);
#pragma unroll
    for (int p = 0; p < 16; ++p) out[p] = bf16x2_mul(out[p], factor[2 * (p / 8) + p % 2]);
    return;
  }
  if (special) fp8_special_pairs(w, f, out);
#pragma unroll
  for (int p = 0; p < 16; ++p) {
    const int j = 2 * (p / 8) + p % 2;
    if (((scales >> (8 * j)) & 0xFFu) == 0xFFu) {
      out[p] = 0x7FC07FC0u;
    } else if (e[j] <= 127) {
      out[p] = bf16x2_mul(out[p], bf16_pow2_pair(e[j]));
    } else {
      out[p] = bf16x2_mul(bf16x2_mul(out[p], bf16_pow2_pair(e[j] - 127)), bf16_pow2_pair(127));
    }
  }
}

}  // namespace mx::cuda
