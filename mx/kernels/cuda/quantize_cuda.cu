// CUDA port of the CPU fast path (mx/kernels/cpu/block_codec_impl.h): same integer recipe for
// the shared exponent and the element encoder, y = v * 2^-e as one IEEE float32 multiply
// (__fmul_rn; built with -ftz=false so 2^-127 stays a subnormal). See NOTES.md.
#include "mx/kernels/cuda/quantize_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "mx/core/block_grid.h"
#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/rounding.h"

namespace mx::cuda {
namespace {

constexpr uint32_t kNanF32 = 0x7FC00000u;  // the quiet NaN the CPU path writes
constexpr uint8_t kScaleNan = 0xFF;

struct DevFormat {
  int bits;
  int man_bits;
  int emin;
  int emax;
  uint32_t max_code;
  uint32_t max_sig24;
  int max_floor_log2;
  float decode[256];
};

struct DevSpec {
  DevFormat f;
  int rule;  // ScaleRule
  bool asym;
  bool flush;
  uint8_t zero_scale;
  uint64_t key;  // stochastic stream key
};

// Geometry: the BlockGrid's numbers.
struct DevGrid {
  int64_t outer, rows, cols;
  int tile_rows, tile_cols;
  int64_t tiles_down, tiles_across;
  int64_t num_blocks;
  int k;
  bool contiguous;  // blocks are contiguous runs of the input
  int64_t run_len, blocks_per_run;
};

struct QuantParams {
  DevSpec s;
  DevGrid g;
  const void* in;
  int in_dtype;  // DType
  uint8_t* elements;
  uint8_t* scales;
  uint16_t* offsets;
  void* fake_out;  // non-null: fake-quantize
  int fake_dtype;
};

// ------------------------------------------------------------------------------------------
// Scalar helpers.

__device__ __forceinline__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ __forceinline__ uint32_t random_bits(uint64_t key, uint64_t index) {
  return uint32_t(mix64(key + (index + 1) * 0x9E3779B97F4A7C15ull) >> 32);
}

__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) {
  return __uint_as_float(uint32_t(h) << 16);
}
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float v) {
  const uint32_t bits = __float_as_uint(v);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((bits >> 16) | 0x0040u);
  const uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
  return uint16_t((bits + rounding) >> 16);
}
__device__ __forceinline__ float fp16_bits_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t em = uint32_t(h & 0x7FFFu) << 13;
  const float scaled = __fmul_rn(__uint_as_float(em), 0x1p112f);
  const uint32_t special = 0x7F800000u | em;
  const uint32_t mag = (h & 0x7C00u) == 0x7C00u ? special : __float_as_uint(scaled);
  return __uint_as_float(sign | mag);
}
__device__ __forceinline__ float e8m0_value(uint8_t byte) {
  if (byte == kScaleNan) return __uint_as_float(kNanF32);
  if (byte == 0) return __uint_as_float(0x00400000u);
  return __uint_as_float(uint32_t(byte) << 23);
}

__device__ __forceinline__ float load_value(const void* in, int dtype, int64_t i) {
  if (dtype == int(DType::kF32)) return static_cast<const float*>(in)[i];
  const uint16_t h = static_cast<const uint16_t*>(in)[i];
  return dtype == int(DType::kBF16) ? bf16_bits_to_f32(h) : fp16_bits_to_f32(h);
}

__device__ __forceinline__ float flush_sub(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x7FFFFFFFu) < 0x800000u ? __uint_as_float(b & 0x80000000u) : v;
}

__device__ int shared_exponent(const DevFormat& p, uint32_t amax_bits, int rule) {
  const uint32_t field = amax_bits >> 23;
  const uint32_t frac = amax_bits & 0x7FFFFFu;
  int floor_log2 = 0;
  uint32_t sig24 = 0;
  if (field != 0) {
    floor_log2 = int(field) - 127;
    sig24 = frac | 0x800000u;
  } else {
    const int width = 32 - __clz(frac);
    floor_log2 = width - 150;
    sig24 = frac << (24 - width);
  }
  switch (rule) {
    case int(ScaleRule::kFloor):
      return floor_log2 - p.emax;
    case int(ScaleRule::kCeil):
      return floor_log2 + (sig24 != 0x800000u ? 1 : 0) - p.emax;
    case int(ScaleRule::kEven): {
      const int dropped = 23 - p.man_bits;
      const uint32_t kept = sig24 >> dropped;
      const uint32_t rest = sig24 & ((1u << dropped) - 1);
      const uint32_t half = 1u << (dropped - 1);
      const uint32_t rounded = kept + ((rest > half || (rest == half && (kept & 1u))) ? 1 : 0);
      return floor_log2 + (rounded == (2u << p.man_bits) ? 1 : 0) - p.emax;
    }
    default: {  // kRceil
      const int e0 = floor_log2 - p.max_floor_log2;
      return sig24 <= p.max_sig24 ? e0 : e0 + 1;
    }
  }
}

template <Rounding kMode, bool kInteger>
__device__ __forceinline__ uint32_t encode_lane(const DevFormat& p, uint32_t y, uint32_t random) {
  const uint32_t sign = y >> 31;
  const int32_t field = int32_t((y >> 23) & 0xFFu);
  const uint32_t sig = (y & 0x7FFFFFu) | 0x800000u;
  const int32_t ey = field - 127;
  int32_t shift = kInteger ? 23 + p.emin - ey : 23 - p.man_bits + max(0, p.emin - ey);
  const bool huge = shift < 1;
  shift = min(max(shift, 1), 63);
  const int32_t s31 = min(shift, 31);
  const uint32_t kept = sig >> s31;
  const uint32_t rest = sig & ((1u << s31) - 1u);
  uint32_t up = 0;
  if constexpr (kMode == Rounding::kNearestEven) {
    const uint32_t half = 1u << min(shift - 1, 30);
    up = (rest > half || (rest == half && (kept & 1u))) ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kNearestAway) {
    const uint32_t half = 1u << min(shift - 1, 30);
    up = rest >= half ? 1u : 0u;
  } else if constexpr (kMode == Rounding::kStochastic) {
    const uint32_t low = rest << min(32 - min(shift, 32), 31);
    const uint32_t high = sig >> min(max(shift - 32, 0), 31);
    const uint32_t fraction32 = shift <= 32 ? (shift == 32 ? rest : low) : high;
    up = random < fraction32 ? 1u : 0u;
  }
  const uint32_t n = kept + up;
  uint32_t magnitude = 0;
  if constexpr (kInteger) {
    magnitude = min(n, p.max_code);
  } else {
    magnitude = (uint32_t(max(ey - p.emin, 0)) << p.man_bits) + n;
    magnitude = min(magnitude, p.max_code);
  }
  magnitude = huge ? p.max_code : magnitude;
  magnitude = field == 0 ? 0u : magnitude;
  if constexpr (kInteger) {
    const uint32_t mask = (1u << p.bits) - 1u;
    return (sign ? 0u - magnitude : magnitude) & mask;
  } else {
    return magnitude | (sign << (p.bits - 1));
  }
}

// ------------------------------------------------------------------------------------------
// One block, in chunks of 8 slots. `Src` provides:
//   int load(int c, float v[8]) -> bit mask of real slots of chunk c (padding reads 0)
//   int64_t index(int slot)     -> flat index of a real slot (stochastic rounding)
// `Dst` consumes codes or decoded values:
//   void codes(int c, int n, uint64_t packed)   (n slots, LSB-first, p.bits each)
//   void value(int c, uint32_t mask, const float d[8])  (fake-quantize)
//   void header(uint8_t scale, uint16_t offset)
struct BlockState {
  uint8_t scale;
  uint16_t offset;
  float m;
  float inv_scale;
  bool nan_block;
};

__device__ __forceinline__ void finish_scale(const DevSpec& s, uint32_t amax, BlockState& st);

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
        lo = fminf(lo, v[j]);
        hi = fmaxf(hi, v[j]);
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

// Scale byte and 1/scale from the block's final amax (after the asymmetric shift).
__device__ __forceinline__ void finish_scale(const DevSpec& s, uint32_t amax, BlockState& st) {
  st.scale = kScaleNan;
  if (!st.nan_block) {
    if (amax == 0) {
      st.scale = s.zero_scale;
    } else {
      const int e = shared_exponent(s.f, amax, s.rule);
      st.nan_block = e > 127;
      st.scale = st.nan_block ? kScaleNan : uint8_t(max(e, -127) + 127);
    }
  }
  if (st.nan_block) st.scale = kScaleNan;
  st.inv_scale = st.nan_block ? 0.0f : e8m0_value(uint8_t(127 - (int(st.scale) - 127)));
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
        if constexpr (kMode == Rounding::kStochastic) r = random_bits(s.key, src.index(c * 8 + j));
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
#pragma unroll
    for (int j = 0; j < 8; ++j) v[j] = ((mask >> j) & 1u) ? load_value(in, dtype, i0 + j) : 0.0f;
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

// Codes of block `block`: whole chunks of 8 are stored as words when k % 8 == 0, otherwise
// bytes go out through a bit accumulator (k * bits % 8 == 0 is required).
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

// ------------------------------------------------------------------------------------------
// Kernels.

template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256) quantize_kernel(__grid_constant__ const QuantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int k = P.g.k;
  if (P.g.contiguous) {
    const int64_t run = b / P.g.blocks_per_run;
    const int64_t j = b % P.g.blocks_per_run;
    RunSrc src{P.in, P.in_dtype, run * P.g.run_len + j * k,
               int(min(int64_t(k), P.g.run_len - j * k))};
    if (P.fake_out) {
      FakeDst<RunSrc> dst{P.fake_out, P.fake_dtype, &src};
      quantize_block<kMode, kInteger>(P.s, k, src, dst);
    } else {
      CodeDst dst(P.elements, P.scales, P.offsets, b, k, P.s.f.bits, P.s.asym);
      quantize_block<kMode, kInteger>(P.s, k, src, dst);
    }
  } else {
    GridSrc src(P.in, P.in_dtype, &P.g, b);
    if (P.fake_out) {
      FakeDst<GridSrc> dst{P.fake_out, P.fake_dtype, &src};
      quantize_block<kMode, kInteger>(P.s, k, src, dst);
    } else {
      CodeDst dst(P.elements, P.scales, P.offsets, b, k, P.s.f.bits, P.s.asym);
      quantize_block<kMode, kInteger>(P.s, k, src, dst);
    }
  }
}

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
      lo = fminf(lo, v[i]);
      hi = fmaxf(hi, v[i]);
    }
  }
  for (int o = 1; o < G; o <<= 1) amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  st = BlockState{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) {
    for (int o = 1; o < G; o <<= 1) {
      lo = fminf(lo, __shfl_xor_sync(0xFFFFFFFFu, lo, o));
      hi = fmaxf(hi, __shfl_xor_sync(0xFFFFFFFFu, hi, o));
    }
    if (st.nan_block) {
      st.offset = 0x7FC0;
    } else {
      if (lo > hi) lo = hi = 0.0f;
      st.offset = f32_to_bf16_bits(__fadd_rn(__fmul_rn(hi, 0.5f), __fmul_rn(lo, 0.5f)));
      st.m = bf16_bits_to_f32(st.offset);
      amax = 0;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        if ((mask >> i) & 1u) v[i] = __fsub_rn(v[i], st.m);
        amax = max(amax, __float_as_uint(v[i]) & 0x7FFFFFFFu);
      }
      for (int o = 1; o < G; o <<= 1) amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
    }
  }
  finish_scale(s, amax, st);
  uint64_t packed = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    code[i] = 0;
    if (!st.nan_block && ((mask >> i) & 1u)) {
      const uint32_t y = __float_as_uint(__fmul_rn(v[i], st.inv_scale));
      uint32_t r = 0;
      if constexpr (kMode == Rounding::kStochastic) r = random_bits(s.key, index(i));
      code[i] = encode_lane<kMode, kInteger>(s.f, y, r);
    }
    packed |= uint64_t(code[i]) << (i * s.f.bits);
  }
  return packed;
}

// Fast path for blocks that are contiguous runs with k = 8 * G, G a power of two <= 32: G
// threads per block, one chunk of 8 values each held in registers (one read of the input).
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256)
    quantize_lanes_kernel(__grid_constant__ const QuantParams P, int log2g) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int G = 1 << log2g;
  const int64_t b = t >> log2g;
  const int c = int(t & (G - 1));
  const bool active = b < P.g.num_blocks;
  const int k = P.g.k;
  const DevSpec& s = P.s;
  const int64_t run = active ? b / P.g.blocks_per_run : 0;
  const int64_t j = active ? b % P.g.blocks_per_run : 0;
  const RunSrc src{P.in, P.in_dtype, run * P.g.run_len + j * k,
                   active ? int(min(int64_t(k), P.g.run_len - j * k)) : 0};
  float v[8];
  const uint32_t mask = src.load(c, v);
  BlockState st;
  uint32_t code[8];
  const uint64_t packed = lane_encode<kMode, kInteger>(
      s, v, mask, G, [&](int i) { return src.index(c * 8 + i); }, st, code);
  if (!active) return;
  if (P.fake_out == nullptr) {
    if (c == 0) {
      P.scales[b] = st.scale;
      if (s.asym) P.offsets[b] = st.offset;
    }
    store_packed(P.elements + b * int64_t(k) * s.f.bits / 8 + int64_t(c) * s.f.bits, s.f.bits,
                 packed);
    return;
  }
  float d[8];
  const float x = e8m0_value(st.scale);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    float r = st.nan_block ? __uint_as_float(kNanF32) : __fmul_rn(s.f.decode[code[i]], x);
    if (s.asym && !st.nan_block) r = __fadd_rn(r, st.m);
    d[i] = r;
  }
  FakeDst<RunSrc> dst{P.fake_out, P.fake_dtype, &src};
  dst.value(c, src.real_mask(c), d);
}

// Dual: a CTA of 256 threads reads a 32 x 64 tile once into shared memory; each thread then
// quantizes one chunk of 8 of a row block (1x32 along K) and one chunk of a column block (32x1
// along M), 4 lanes per block.
constexpr int kDualRows = 32, kDualCols = 64, kDualThreads = 256;

struct DualParams {
  DevSpec s;
  const void* in;
  int in_dtype;
  int64_t M, K;
  int64_t row_blocks_per_row;  // ceil(K / 32)
  MxDeviceBuffers rows, cols;
};

template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(kDualThreads) dual_kernel(__grid_constant__ const DualParams P) {
  __shared__ float tile[kDualRows][kDualCols + 1];
  const int64_t R0 = int64_t(blockIdx.y) * kDualRows;
  const int64_t C0 = int64_t(blockIdx.x) * kDualCols;
  const int t = threadIdx.x;
  const bool full = R0 + kDualRows <= P.M && C0 + kDualCols <= P.K;
  if (full && P.in_dtype != int(DType::kF32) && P.K % 8 == 0 &&
      (reinterpret_cast<uintptr_t>(P.in) & 15) == 0) {
    // 32 rows x 8 chunks of 8 16-bit values: one 16-byte load per thread.
    const int r = t / 8, q = t % 8;
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.in) +
                                                         (R0 + r) * P.K + C0 + q * 8));
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t h0 = uint16_t(w[i]), h1 = uint16_t(w[i] >> 16);
      const bool bf = P.in_dtype == int(DType::kBF16);
      tile[r][q * 8 + 2 * i] = bf ? bf16_bits_to_f32(h0) : fp16_bits_to_f32(h0);
      tile[r][q * 8 + 2 * i + 1] = bf ? bf16_bits_to_f32(h1) : fp16_bits_to_f32(h1);
    }
  } else {
    for (int e = t; e < kDualRows * kDualCols; e += kDualThreads) {
      const int r = e / kDualCols, c = e % kDualCols;
      const int64_t row = R0 + r, col = C0 + c;
      tile[r][c] = row < P.M && col < P.K ? load_value(P.in, P.in_dtype, row * P.K + col) : 0.0f;
    }
  }
  __syncthreads();
  const DevSpec& s = P.s;
  const int lane = t % 4, task = t / 4;  // 64 blocks per direction, 4 lanes each
  {
    // Row block: tile row task / 2, columns (task % 2) * 32 + [0, 32).
    const int r = task / 2, c0 = (task % 2) * 32 + lane * 8;
    const int64_t row = R0 + r;
    const bool active = row < P.M && C0 + (task % 2) * 32 < P.K;
    float v[8];
    uint32_t mask = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = tile[r][c0 + i];
      mask |= (row < P.M && C0 + c0 + i < P.K ? 1u : 0u) << i;
    }
    BlockState st;
    uint32_t code[8];
    const uint64_t packed = lane_encode<kMode, kInteger>(
        s, v, mask, 4, [&](int i) { return row * P.K + C0 + c0 + i; }, st, code);
    if (active) {
      const int64_t b = row * P.row_blocks_per_row + (C0 / 32 + task % 2);
      if (lane == 0) {
        P.rows.scales[b] = st.scale;
        if (s.asym) P.rows.offsets[b] = st.offset;
      }
      store_packed(P.rows.elements + b * 4 * s.f.bits + lane * s.f.bits, s.f.bits, packed);
    }
  }
  {
    // Column block: tile column task, rows lane * 8 + [0, 8).
    const int c = task, r0 = lane * 8;
    const int64_t col = C0 + c;
    const bool active = col < P.K;
    float v[8];
    uint32_t mask = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = tile[r0 + i][c];
      mask |= (R0 + r0 + i < P.M && col < P.K ? 1u : 0u) << i;
    }
    BlockState st;
    uint32_t code[8];
    const uint64_t packed = lane_encode<kMode, kInteger>(
        s, v, mask, 4, [&](int i) { return (R0 + r0 + i) * P.K + col; }, st, code);
    if (active) {
      const int64_t b = (R0 / 32) * P.K + col;
      if (lane == 0) {
        P.cols.scales[b] = st.scale;
        if (s.asym) P.cols.offsets[b] = st.offset;
      }
      store_packed(P.cols.elements + b * 4 * s.f.bits + lane * s.f.bits, s.f.bits, packed);
    }
  }
}

struct DequantParams {
  DevFormat f;
  DevGrid g;
  bool asym;
  const uint8_t* elements;
  const uint8_t* scales;
  const uint16_t* offsets;
  void* out;
  int out_dtype;
};

__device__ __forceinline__ void store_out(void* out, int dtype, int64_t i, float v) {
  if (dtype == int(DType::kF32)) {
    static_cast<float*>(out)[i] = v;
  } else {
    static_cast<uint16_t*>(out)[i] = f32_to_bf16_bits(v);
  }
}

__device__ __forceinline__ float decode_one(const DequantParams& P, uint32_t code, bool nan_block,
                                            float x, float m) {
  if (nan_block) return __uint_as_float(kNanF32);
  float t = __fmul_rn(P.f.decode[code], x);
  if (P.asym) t = __fadd_rn(t, m);
  return t;
}

// Contiguous blocks with k % 8 == 0: one thread per chunk of 8 codes (`bits` bytes in, 8 values
// out).
__global__ void __launch_bounds__(256)
    dequantize_chunks_kernel(__grid_constant__ const DequantParams P) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int k = P.g.k, bits = P.f.bits, cpb = k / 8;
  if (t >= P.g.num_blocks * cpb) return;
  const int64_t b = t / cpb;
  const int c = int(t - b * cpb);
  const int64_t run = b / P.g.blocks_per_run;
  const int64_t j = b - run * P.g.blocks_per_run;
  const int64_t i0 = run * P.g.run_len + j * k + c * 8;
  const int n = int(min(int64_t(8), P.g.run_len - j * k - c * 8));
  if (n <= 0) return;
  const uint8_t scale = __ldg(P.scales + b);
  const bool nan_block = scale == kScaleNan;
  const float x = e8m0_value(scale);
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const uint8_t* q = P.elements + t * bits;
  uint64_t packed = 0;
  switch (bits) {
    case 8:
      packed = __ldg(reinterpret_cast<const unsigned long long*>(q));
      break;
    case 4:
      packed = __ldg(reinterpret_cast<const unsigned int*>(q));
      break;
    case 2:
      packed = __ldg(reinterpret_cast<const unsigned short*>(q));
      break;
    default:
      for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
  }
  const uint32_t code_mask = (1u << bits) - 1u;
  float d[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    d[i] = decode_one(P, uint32_t(packed >> (i * bits)) & code_mask, nan_block, x, m);
  }
  if (n == 8 && P.out_dtype == int(DType::kF32) &&
      (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
    p[0] = make_float4(d[0], d[1], d[2], d[3]);
    p[1] = make_float4(d[4], d[5], d[6], d[7]);
  } else if (n == 8 && P.out_dtype == int(DType::kBF16) &&
             (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] =
          uint32_t(f32_to_bf16_bits(d[2 * i])) | (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
        make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if (i < n) store_out(P.out, P.out_dtype, i0 + i, d[i]);
    }
  }
}

__global__ void __launch_bounds__(256) dequantize_kernel(__grid_constant__ const DequantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int k = P.g.k, bits = P.f.bits;
  const uint8_t scale = P.scales[b];
  const float x = e8m0_value(scale);
  const bool nan_block = scale == kScaleNan;
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const uint8_t* src = P.elements + b * int64_t(k) * bits / 8;
  const uint32_t code_mask = (1u << bits) - 1u;
  auto decode = [&](uint32_t code) {
    if (nan_block) return __uint_as_float(kNanF32);
    float t = __fmul_rn(P.f.decode[code], x);
    if (P.asym) t = __fadd_rn(t, m);
    return t;
  };
  if (P.g.contiguous && (k & 7) == 0) {
    const int64_t run = b / P.g.blocks_per_run;
    const int64_t j = b % P.g.blocks_per_run;
    const int64_t first = run * P.g.run_len + j * k;
    const int n_real = int(min(int64_t(k), P.g.run_len - j * k));
    for (int c = 0; c < k / 8; ++c) {
      const uint8_t* q = src + c * bits;
      uint64_t packed = 0;
      switch (bits) {
        case 8:
          packed = *reinterpret_cast<const uint64_t*>(q);
          break;
        case 4:
          packed = *reinterpret_cast<const uint32_t*>(q);
          break;
        case 2:
          packed = *reinterpret_cast<const uint16_t*>(q);
          break;
        default:
          for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
      }
      float d[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) d[i] = decode(uint32_t(packed >> (i * bits)) & code_mask);
      const int64_t i0 = first + c * 8;
      const int n = n_real - c * 8;
      if (n >= 8 && P.out_dtype == int(DType::kF32) &&
          (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
        float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
        p[0] = make_float4(d[0], d[1], d[2], d[3]);
        p[1] = make_float4(d[4], d[5], d[6], d[7]);
      } else if (n >= 8 && P.out_dtype == int(DType::kBF16) &&
                 (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          w[i] = uint32_t(f32_to_bf16_bits(d[2 * i])) |
                 (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
        }
        *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
            make_uint4(w[0], w[1], w[2], w[3]);
      } else {
        for (int i = 0; i < min(n, 8); ++i) store_out(P.out, P.out_dtype, i0 + i, d[i]);
      }
    }
    return;
  }
  GridSrc where(nullptr, 0, &P.g, b);
  uint32_t acc = 0;
  int nacc = 0;
  for (int slot = 0; slot < k; ++slot) {
    while (nacc < bits) {
      acc |= uint32_t(*src++) << nacc;
      nacc += 8;
    }
    const uint32_t code = acc & code_mask;
    acc >>= bits;
    nacc -= bits;
    const int64_t idx = where.index(slot);
    if (idx >= 0) store_out(P.out, P.out_dtype, idx, decode(code));
  }
}

// ------------------------------------------------------------------------------------------
// Host side.

DevFormat make_dev_format(const FormatTraits& f) {
  DevFormat p{};
  p.bits = f.bits;
  p.man_bits = f.man_bits;
  p.emin = f.emin;
  p.emax = f.emax;
  p.max_code = f.max_magnitude_code;
  const float m = static_cast<float>(f.max_normal);
  const uint32_t mb = std::bit_cast<uint32_t>(m);
  p.max_sig24 = (mb & 0x7FFFFFu) | 0x800000u;
  p.max_floor_log2 = int(mb >> 23) - 127;
  for (int c = 0; c < 256; ++c) {
    p.decode[c] = c < (1 << f.bits) ? static_cast<float>(decode_element(f, uint8_t(c))) : 0.0f;
  }
  return p;
}

DevSpec make_dev_spec(const QuantSpec& spec) {
  DevSpec s{};
  s.f = make_dev_format(traits(spec.format));
  s.rule = int(spec.scale_rule);
  s.asym = spec.asymmetric;
  s.flush = spec.flush_subnormals;
  s.zero_scale = spec.zero_block_scale;
  s.key = stochastic_stream_key(spec.seed);
  return s;
}

std::string make_dev_grid(std::span<const int64_t> shape, const QuantSpec& spec, DevGrid* out) {
  std::string error;
  const BlockGrid g = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  const int bits = traits(spec.format).bits;
  if ((int64_t(g.block_elems()) * bits) % 8 != 0) {
    return "CUDA path needs blocks whose packed codes fill whole bytes (block elements * " +
           std::to_string(bits) + " bits is not a multiple of 8)";
  }
  DevGrid d{};
  d.outer = g.outer;
  d.rows = g.rows;
  d.cols = g.cols;
  d.tile_rows = g.tile_rows;
  d.tile_cols = g.tile_cols;
  d.tiles_down = g.tiles_down;
  d.tiles_across = g.tiles_across;
  d.num_blocks = g.num_blocks();
  d.k = g.block_elems();
  d.contiguous = g.blocks_are_contiguous_runs();
  const bool row_tiles = g.tile_rows == 1;
  d.run_len = row_tiles ? g.cols : g.rows;
  d.blocks_per_run = row_tiles ? g.tiles_across : g.tiles_down;
  *out = d;
  return "";
}

std::string check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string(what) + ": " + cudaGetErrorString(e);
  return "";
}

std::string check_dtype_in(DType t) {
  if (t != DType::kF32 && t != DType::kBF16 && t != DType::kF16) return "unknown input dtype";
  return "";
}

template <template <Rounding, bool> class Launch, class... Args>
void dispatch(Rounding mode, bool integer, Args&&... args) {
  auto go = [&]<Rounding M>() {
    if (integer) {
      Launch<M, true>::run(args...);
    } else {
      Launch<M, false>::run(args...);
    }
  };
  switch (mode) {
    case Rounding::kNearestEven:
      go.template operator()<Rounding::kNearestEven>();
      break;
    case Rounding::kNearestAway:
      go.template operator()<Rounding::kNearestAway>();
      break;
    case Rounding::kTowardZero:
      go.template operator()<Rounding::kTowardZero>();
      break;
    case Rounding::kStochastic:
      go.template operator()<Rounding::kStochastic>();
      break;
  }
}

template <Rounding M, bool I>
struct LaunchQuantize {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.num_blocks + threads - 1) / threads;
    quantize_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

template <Rounding M, bool I>
struct LaunchLanes {
  static void run(const QuantParams& P, int log2g, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = ((P.g.num_blocks << log2g) + threads - 1) / threads;
    quantize_lanes_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P, log2g);
  }
};

template <Rounding M, bool I>
struct LaunchDual {
  static void run(const DualParams& P, dim3 grid, cudaStream_t stream) {
    dual_kernel<M, I><<<grid, kDualThreads, 0, stream>>>(P);
  }
};

std::string run_quantize(const void* d_in, DType dtype, std::span<const int64_t> shape,
                         const QuantSpec& spec, QuantParams P, cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (std::string e = make_dev_grid(shape, spec, &P.g); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  if ((P.g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P.s = make_dev_spec(spec);
  P.in = d_in;
  P.in_dtype = int(dtype);
  const int G = P.g.k / 8;
  if (P.g.contiguous && P.g.k % 8 == 0 && G <= 32 && (G & (G - 1)) == 0 &&
      (P.g.num_blocks * G + 255) / 256 <= int64_t(0x7FFFFFFF)) {
    dispatch<LaunchLanes>(spec.rounding, traits(spec.format).is_integer, P,
                          std::countr_zero(unsigned(G)), stream);
  } else {
    dispatch<LaunchQuantize>(spec.rounding, traits(spec.format).is_integer, P, stream);
  }
  return check_launch("quantize kernel launch");
}

}  // namespace

bool cuda_device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

std::string quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, uint8_t* d_elements, uint8_t* d_scales,
                          uint16_t* d_offsets, cudaStream_t stream) {
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  QuantParams P{};
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string fake_quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, DType out_dtype, void* d_out,
                               cudaStream_t stream) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "fake-quantize writes float32 or bfloat16, not float16";
  }
  QuantParams P{};
  P.fake_out = d_out;
  P.fake_dtype = int(out_dtype);
  if (element_count_fits(shape) && element_count(shape) > 0 && d_out == nullptr) {
    return "null output";
  }
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string dequantize_cuda(const uint8_t* d_elements, const uint8_t* d_scales,
                            const uint16_t* d_offsets, std::span<const int64_t> shape,
                            const QuantSpec& spec, DType out_dtype, void* d_out,
                            cudaStream_t stream) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "dequantize writes float32 or bfloat16, not float16";
  }
  if (std::string e = validate(spec); !e.empty()) return e;
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  DequantParams P{};
  if (std::string e = make_dev_grid(shape, spec, &P.g); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  if ((P.g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P.f = make_dev_format(traits(spec.format));
  P.asym = spec.asymmetric;
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  P.out = d_out;
  P.out_dtype = int(out_dtype);
  const int threads = 256;
  if (P.g.contiguous && P.g.k % 8 == 0) {
    const int64_t chunks = P.g.num_blocks * (P.g.k / 8);
    if ((chunks + threads - 1) / threads > int64_t(0x7FFFFFFF)) return "tensor too large";
    dequantize_chunks_kernel<<<unsigned((chunks + threads - 1) / threads), threads, 0, stream>>>(P);
    return check_launch("dequantize kernel launch");
  }
  dequantize_kernel<<<unsigned((P.g.num_blocks + threads - 1) / threads), threads, 0, stream>>>(P);
  return check_launch("dequantize kernel launch");
}

std::string quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxDeviceBuffers rows, MxDeviceBuffers cols,
                               cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (shape.size() != 2) return "dual quantize needs a 2-D [M, K] matrix";
  if (spec.is_tiled() || spec.block_size != 32) return "dual quantize needs 1-D blocks of 32";
  if (shape[0] < 0 || shape[1] < 0) return "negative dimension";
  if (spec.asymmetric && (rows.offsets == nullptr || cols.offsets == nullptr)) {
    return "asymmetric spec needs offsets buffers";
  }
  const int bits = traits(spec.format).bits;
  if ((32 * bits) % 8 != 0) return "unsupported format";
  DualParams P{};
  P.s = make_dev_spec(spec);
  P.in = d_in;
  P.in_dtype = int(dtype);
  P.M = shape[0];
  P.K = shape[1];
  if (P.M == 0 || P.K == 0) return "";
  P.row_blocks_per_row = (P.K + 31) / 32;
  P.rows = rows;
  P.cols = cols;
  const int64_t gx = (P.K + kDualCols - 1) / kDualCols, gy = (P.M + kDualRows - 1) / kDualRows;
  if (gx > 0x7FFFFFFF || gy > 65535) return "matrix too large for the dual kernel grid";
  dispatch<LaunchDual>(spec.rounding, traits(spec.format).is_integer, P,
                       dim3(unsigned(gx), unsigned(gy)), stream);
  return check_launch("dual quantize kernel launch");
}

}  // namespace mx::cuda
