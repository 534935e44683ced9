// The general kernels' codec: one block in chunks of 8 slots, read from a contiguous run of the
// input or through the grid's index map and written as packed codes or fake-quantized values
// (quantize_block), and one chunk of a block spread over the lanes of a warp (lane_encode).
// Shared by the general quantize, dual and dequantize kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// One block, in chunks of 8 slots. `Src` provides:
//   int load(int c, float v[8]) -> bit mask of real slots of chunk c (padding reads 0)
//   int64_t index(int slot)     -> flat index of a real slot (stochastic rounding)
// `Dst` consumes codes or decoded values:
//   void codes(int c, int n, uint64_t packed)   (n slots, LSB-first, p.bits each)
//   void value(int c, uint32_t mask, const float d[8])  (fake-quantize)
//   void header(uint8_t scale, uint16_t offset)
template <class Src>
__device__ BlockState block_scale(const DevSpec& s, int k, Src& src) {
  const int chunks = (k + 7) / 8;
  uint32_t amax = 0;
  float lo = __uint_as_float(0x7F800000u), hi = __uint_as_float(0xFF800000u);
  for (int c = 0; c < chunks; ++c) {
    float v[8];
    const uint32_t mask = src.load(c, v);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (s.flush) v[j] = flush_sub(v[j]);
      amax = max(amax, __float_as_uint(v[j]) & 0x7FFFFFFFu);
      if ((mask >> j) & 1u) {
        lo = min_first(lo, v[j]);
        hi = max_first(hi, v[j]);
      }
    }
  }
  BlockState st{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) {
    if (st.nan_block) {
      st.offset = 0x7FC0;
    } else {
      if (lo > hi) lo = hi = 0.0f;
      st.offset = f32_to_bf16_bits(__fadd_rn(__fmul_rn(hi, 0.5f), __fmul_rn(lo, 0.5f)));
      st.m = bf16_bits_to_f32(st.offset);
      amax = 0;
      for (int c = 0; c < chunks; ++c) {
        float v[8];
        const uint32_t mask = src.load(c, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          if (s.flush) v[j] = flush_sub(v[j]);
          const float d = ((mask >> j) & 1u) ? __fsub_rn(v[j], st.m) : v[j];
          amax = max(amax, __float_as_uint(d) & 0x7FFFFFFFu);
        }
      }
    }
  }
  finish_scale(s, amax, st);
  return st;
}

template <Rounding kMode, bool kInteger, class Src, class Dst>
__device__ void quantize_block(const DevSpec& s, int k, Src& src, Dst& dst) {
  const BlockState st = block_scale(s, k, src);
  dst.header(st.scale, st.offset);
  const int chunks = (k + 7) / 8;
  const bool fake = dst.is_fake();
  for (int c = 0; c < chunks; ++c) {
    const int n = min(8, k - c * 8);
    float v[8];
    const uint32_t mask = st.nan_block ? 0u : src.load(c, v);
    uint64_t packed = 0;
    uint32_t code[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      code[j] = 0;
      if (!st.nan_block && ((mask >> j) & 1u)) {
        float x = s.flush ? flush_sub(v[j]) : v[j];
        if (s.asym) x = __fsub_rn(x, st.m);
        const uint32_t y = __float_as_uint(__fmul_rn(x, st.inv_scale));
        uint32_t r = 0;
        if constexpr (kMode == Rounding::kStochastic) r = dither_at(s, src.index(c * 8 + j));
        code[j] = encode_lane<kMode, kInteger>(s.f, y, r);
      }
      packed |= uint64_t(code[j]) << (j * s.f.bits);
    }
    if (!fake) {
      dst.codes(c, n, packed);
    } else {
      float d[8];
      const uint32_t real = st.nan_block ? src.real_mask(c) : mask;
      const float x = e8m0_value(st.scale);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float t = st.nan_block ? __uint_as_float(kNanF32) : __fmul_rn(s.f.decode[code[j]], x);
        if (s.asym && !st.nan_block) t = __fadd_rn(t, st.m);
        d[j] = t;
      }
      dst.value(c, real, d);
    }
  }
}

// ------------------------------------------------------------------------------------------
// Sources.

// A contiguous run [first, first + n_real) of the input; slots past n_real are padding.
struct RunSrc {
  const void* in;
  int dtype;
  int64_t first;
  int n_real;
  __device__ uint32_t real_mask(int c) const {
    const int n = n_real - c * 8;
    return n >= 8 ? 0xFFu : n <= 0 ? 0u : (1u << n) - 1u;
  }
  __device__ int64_t index(int slot) const { return first + slot; }
  __device__ uint32_t load(int c, float v[8]) const {
    const uint32_t mask = real_mask(c);
    const int64_t i0 = first + c * 8;
    if (mask == 0xFFu) {
      if (dtype == int(DType::kF32)) {
        const float* p = static_cast<const float*>(in) + i0;
        if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
          const float4 a = __ldg(reinterpret_cast<const float4*>(p));
          const float4 b = __ldg(reinterpret_cast<const float4*>(p) + 1);
          v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
          v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
          return mask;
        }
      } else {
        const uint16_t* p = static_cast<const uint16_t*>(in) + i0;
        if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
          const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
          const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const uint16_t h0 = uint16_t(w[j]), h1 = uint16_t(w[j] >> 16);
            if (dtype == int(DType::kBF16)) {
              v[2 * j] = bf16_bits_to_f32(h0);
              v[2 * j + 1] = bf16_bits_to_f32(h1);
            } else {
              v[2 * j] = fp16_bits_to_f32(h0);
              v[2 * j + 1] = fp16_bits_to_f32(h1);
            }
          }
          return mask;
        }
      }
    }
    // Unaligned or partial: scalar loads, all issued before the first conversion (a
    // per-element dtype branch would wait for each load in turn).
    if (dtype == int(DType::kF32)) {
      const float* p = static_cast<const float*>(in) + i0;
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = ((mask >> j) & 1u) ? p[j] : 0.0f;
      return mask;
    }
    const uint16_t* p = static_cast<const uint16_t*>(in) + i0;
    uint16_t h[8];
#pragma unroll
    for (int j = 0; j < 8; ++j) h[j] = ((mask >> j) & 1u) ? p[j] : uint16_t(0);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      v[j] = dtype == int(DType::kBF16) ? bf16_bits_to_f32(h[j]) : fp16_bits_to_f32(h[j]);
    }
    return mask;
  }
};

// Any block of the grid, through its index map.
struct GridSrc {
  const void* in;
  int dtype;
  const DevGrid* g;
  int64_t o, row0, col0;
  int k;
  __device__ GridSrc(const void* in_, int dtype_, const DevGrid* g_, int64_t block)
      : in(in_), dtype(dtype_), g(g_), k(g_->k) {
    const int64_t per_outer = g->tiles_down * g->tiles_across;
    o = block / per_outer;
    const int64_t t = block % per_outer;
    row0 = (t / g->tiles_across) * g->tile_rows;
    col0 = (t % g->tiles_across) * g->tile_cols;
  }
  __device__ int64_t index(int slot) const {
    const int64_t row = row0 + slot / g->tile_cols;
    const int64_t col = col0 + slot % g->tile_cols;
    if (slot >= k || row >= g->rows || col >= g->cols) return -1;
    return (o * g->rows + row) * g->cols + col;
  }
  __device__ uint32_t real_mask(int c) const {
    uint32_t m = 0;
    for (int j = 0; j < 8; ++j) m |= (index(c * 8 + j) >= 0 ? 1u : 0u) << j;
    return m;
  }
  __device__ uint32_t load(int c, float v[8]) const {
    uint32_t m = 0;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int64_t idx = index(c * 8 + j);
      m |= (idx >= 0 ? 1u : 0u) << j;
      v[j] = idx >= 0 ? load_value(in, dtype, idx) : 0.0f;
    }
    return m;
  }
};

// ------------------------------------------------------------------------------------------
// Destinations.

__device__ __forceinline__ void store_packed(uint8_t* dst, int bytes, uint64_t packed) {
  // dst is aligned to `bytes` when bytes is 8, 4, 2; 6 bytes are 2-aligned.
  switch (bytes) {
    case 8:
      *reinterpret_cast<uint64_t*>(dst) = packed;
      return;
    case 4:
      *reinterpret_cast<uint32_t*>(dst) = uint32_t(packed);
      return;
    case 2:
      *reinterpret_cast<uint16_t*>(dst) = uint16_t(packed);
      return;
    case 6:
      reinterpret_cast<uint16_t*>(dst)[0] = uint16_t(packed);
      reinterpret_cast<uint16_t*>(dst)[1] = uint16_t(packed >> 16);
      reinterpret_cast<uint16_t*>(dst)[2] = uint16_t(packed >> 32);
      return;
    default:
      for (int i = 0; i < bytes; ++i) dst[i] = uint8_t(packed >> (8 * i));
  }
}

// Codes of block `block` and the blocks after it: whole chunks of 8 are stored as words when
// k % 8 == 0, otherwise bytes go out through a bit accumulator that carries on into the next
// block (`block` advanced by the caller); flush() writes a last partial byte, zero-filled.
struct CodeDst {
  uint8_t* elements;
  uint8_t* scales;
  uint16_t* offsets;
  int64_t block;
  int k, bits;
  bool asym;
  uint8_t* cursor;
  uint32_t acc;
  int nacc;
  __device__ CodeDst(uint8_t* e, uint8_t* s, uint16_t* o, int64_t b, int k_, int bits_, bool asym_)
      : elements(e),
        scales(s),
        offsets(o),
        block(b),
        k(k_),
        bits(bits_),
        asym(asym_),
        acc(0),
        nacc(0) {
    cursor = elements + block * int64_t(k) * bits / 8;
  }
  __device__ bool is_fake() const { return false; }
  __device__ void header(uint8_t scale, uint16_t offset) {
    scales[block] = scale;
    if (asym) offsets[block] = offset;
  }
  __device__ void codes(int c, int n, uint64_t packed) {
    if (n == 8 && (k & 7) == 0) {
      store_packed(cursor + int64_t(c) * bits, bits, packed);
      return;
    }
    for (int j = 0; j < n; ++j) {
      acc |= uint32_t((packed >> (j * bits)) & 0xFFu) << nacc;
      nacc += bits;
      while (nacc >= 8) {
        *cursor++ = uint8_t(acc);
        acc >>= 8;
        nacc -= 8;
      }
    }
  }
  __device__ void flush() {
    if (nacc > 0) *cursor = uint8_t(acc);
  }
  __device__ void value(int, uint32_t, const float*) {}
};

template <class Src>
struct FakeDst {
  void* out;
  int dtype;
  const Src* src;
  __device__ bool is_fake() const { return true; }
  __device__ void header(uint8_t, uint16_t) {}
  __device__ void codes(int, int, uint64_t) {}
  __device__ void value(int c, uint32_t mask, const float* d) {
    if constexpr (std::is_same_v<Src, RunSrc>) {
      const int64_t i0 = src->first + c * 8;
      if (mask == 0xFFu) {
        if (dtype == int(DType::kF32)) {
          float* p = static_cast<float*>(out) + i0;
          if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
            reinterpret_cast<float4*>(p)[0] = make_float4(d[0], d[1], d[2], d[3]);
            reinterpret_cast<float4*>(p)[1] = make_float4(d[4], d[5], d[6], d[7]);
            return;
          }
        } else {
          uint16_t* p = static_cast<uint16_t*>(out) + i0;
          if ((reinterpret_cast<uintptr_t>(p) & 15) == 0) {
            uint32_t w[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              w[j] = uint32_t(f32_to_bf16_bits(d[2 * j])) |
                     (uint32_t(f32_to_bf16_bits(d[2 * j + 1])) << 16);
            }
            *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
            return;
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (!((mask >> j) & 1u)) continue;
      const int64_t idx = src->index(c * 8 + j);
      if (dtype == int(DType::kF32)) {
        static_cast<float*>(out)[idx] = d[j];
      } else {
        static_cast<uint16_t*>(out)[idx] = f32_to_bf16_bits(d[j]);
      }
    }
  }
};

// One chunk of 8 slots of a block spread over G lanes of a warp (G a power of two <= 32, the
// group aligned in the warp); every lane of the warp must call this (shuffles). Returns the
// chunk's codes packed LSB-first and the block's state in `st`. `index(i)` is the flat index of
// slot i of the chunk (stochastic rounding).
template <Rounding kMode, bool kInteger, class IndexFn>
__device__ __forceinline__ uint64_t lane_encode(const DevSpec& s, float v[8], uint32_t mask, int G,
                                                IndexFn index, BlockState& st, uint32_t code[8]) {
  uint32_t amax = 0;
  float lo = __uint_as_float(0x7F800000u), hi = __uint_as_float(0xFF800000u);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    if (s.flush) v[i] = flush_sub(v[i]);
    amax = max(amax, __float_as_uint(v[i]) & 0x7FFFFFFFu);
    if (s.asym && ((mask >> i) & 1u)) {
      lo = min_first(lo, v[i]);
      hi = max_first(hi, v[i]);
    }
  }
  for (int o = 1; o < G; o <<= 1) amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  st = BlockState{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) shift_by_offset<8>(v, mask, G, lo, hi, amax, st);
  finish_scale(s, amax, st);
  uint64_t packed = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    code[i] = 0;
    if (!st.nan_block && ((mask >> i) & 1u)) {
      const uint32_t y = __float_as_uint(__fmul_rn(v[i], st.inv_scale));
      uint32_t r = 0;
      if constexpr (kMode == Rounding::kStochastic) r = dither_at(s, index(i));
      code[i] = encode_lane<kMode, kInteger>(s.f, y, r);
    }
    packed |= uint64_t(code[i]) << (i * s.f.bits);
  }
  return packed;
}

}  // namespace mx::cuda
