// The casts that attention kernels make inside their tiles (of P and dS): one MX block of 32
// values held by a group of lanes, cast as the CPU's fake_quantize casts that block. Two
// layouts: a whole warp with one value per lane (cast_value), and a quad of four lanes with
// eight values each, in the order of a tensor-core accumulator (cast_quad). Both reduce the
// block's largest magnitude exactly (an integer max), so they give the same bits as the
// quantizer kernels, which give the CPU reference's.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/format.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

constexpr unsigned kFullWarp = 0xFFFFFFFFu;

struct DevCast {
  int kind;  // TileCast::Kind
  int rounding;
  bool integer;
  mx::cuda::DevSpec spec;
};

inline DevCast dev_cast(const TileCast& c) {
  DevCast d{};
  d.kind = int(c.kind);
  if (c.kind == TileCast::Kind::kMx) {
    d.rounding = int(c.spec.rounding);
    d.integer = traits(c.spec.format).is_integer;
    d.spec = mx::cuda::make_dev_spec(c.spec);
  }
  return d;
}

__device__ __forceinline__ float bf16_round(float v) {
  return __bfloat162float(__float2bfloat16_rn(v));
}

__device__ __forceinline__ uint32_t encode(const DevCast& c, uint32_t y, uint32_t dither) {
  using mx::cuda::encode_lane;
  const auto& f = c.spec.f;
  switch (Rounding(c.rounding)) {
    case Rounding::kNearestEven:
      return c.integer ? encode_lane<Rounding::kNearestEven, true>(f, y, dither)
                       : encode_lane<Rounding::kNearestEven, false>(f, y, dither);
    case Rounding::kNearestAway:
      return c.integer ? encode_lane<Rounding::kNearestAway, true>(f, y, dither)
                       : encode_lane<Rounding::kNearestAway, false>(f, y, dither);
    case Rounding::kTowardZero:
      return c.integer ? encode_lane<Rounding::kTowardZero, true>(f, y, dither)
                       : encode_lane<Rounding::kTowardZero, false>(f, y, dither);
    case Rounding::kStochastic:
      return c.integer ? encode_lane<Rounding::kStochastic, true>(f, y, dither)
                       : encode_lane<Rounding::kStochastic, false>(f, y, dither);
  }
  return 0;
}

// One element of a block whose scale is settled: x (flushed, offset removed) to its cast value.
// `decode` is the format's table of element values (c.spec.f.decode, or a copy of it in shared
// memory: lanes index it at different codes, which a kernel parameter serializes).
__device__ __forceinline__ float cast_element(const DevCast& c, const mx::cuda::BlockState& st,
                                              float x, int64_t index, const float* decode) {
  using namespace mx::cuda;
  const DevSpec& s = c.spec;
  const float shifted = s.asym ? __fsub_rn(x, st.m) : x;
  const uint32_t y = __float_as_uint(__fmul_rn(shifted, st.inv_scale));
  const uint32_t dither = c.rounding == int(Rounding::kStochastic) ? dither_at(s, index) : 0u;
  float out = __fmul_rn(decode[encode(c, y, dither)], e8m0_value(st.scale));
  if (s.asym) out = __fadd_rn(out, st.m);
  return out;
}

// A block of 32 spread over the warp, lane = slot. `real` is false for padding past the tensor's
// end; `index` is the value's flat index in the tensor the CPU casts. Every lane must call it.
__device__ __forceinline__ float cast_value(const DevCast& c, float v, bool real, int64_t index) {
  using namespace mx::cuda;
  if (c.kind == int(TileCast::Kind::kNone)) return v;
  if (c.kind == int(TileCast::Kind::kBF16)) return bf16_round(v);
  const DevSpec& s = c.spec;
  float x = real ? v : 0.0f;
  if (s.flush) x = flush_sub(x);
  uint32_t amax = __reduce_max_sync(kFullWarp, __float_as_uint(x) & 0x7FFFFFFFu);
  BlockState st{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) {
    if (st.nan_block) {
      st.offset = 0x7FC0;
    } else {
      float lo = real ? x : __uint_as_float(0x7F800000u);
      float hi = real ? x : __uint_as_float(0xFF800000u);
      for (int o = 1; o < 32; o <<= 1) minmax_xor(lo, hi, o);
      if (lo > hi) lo = hi = 0.0f;
      st.offset = f32_to_bf16_bits(__fadd_rn(__fmul_rn(hi, 0.5f), __fmul_rn(lo, 0.5f)));
      st.m = bf16_bits_to_f32(st.offset);
      const float d = real ? __fsub_rn(x, st.m) : x;
      amax = __reduce_max_sync(kFullWarp, __float_as_uint(d) & 0x7FFFFFFFu);
    }
  }
  finish_scale(s, amax, st);
  if (st.nan_block) return __uint_as_float(kNanF32);
  return cast_element(c, st, x, index, s.f.decode);
}

// The elements of one symmetric block whose scale is settled, with the rounding mode and the
// format's kind fixed at compile time: a kernel that picked them per element would carry every
// variant's instructions (and the stochastic dither's hash) for each value. Magnitudes round
// through encode_mag, as the quantizer's fast path does (its values equal the CPU's): a few
// float and integer ops per value instead of a code and a lookup of its value.
template <Rounding kMode, bool kInteger>
__device__ __forceinline__ void encode_quad(const DevCast& c, const mx::cuda::BlockState& st,
                                            float (&v)[8], int64_t first, int64_t base,
                                            int64_t stride) {
  using namespace mx::cuda;
  const float scale = e8m0_value(st.scale);
  const int t = int(threadIdx.x & 3);
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float a = __fmul_rn(fabsf(v[k]), st.inv_scale);
    uint32_t dither = 0;
    if constexpr (kMode == Rounding::kStochastic) {
      dither = dither_at(c.spec, base + stride * (first + 8 * (k >> 1) + 2 * t + (k & 1)));
    }
    float value;
    encode_mag<kMode, kInteger>(c.spec.f, a, dither, value);
    const uint32_t sign = __float_as_uint(v[k]) & 0x80000000u;
    if constexpr (kInteger) {
      value = sign ? __fsub_rn(0.0f, value) : value;
    } else {
      value = __uint_as_float(__float_as_uint(value) | sign);
    }
    v[k] = __fmul_rn(value, scale);
  }
}

// Which encoders a kernel compiles in for a cast held in quads: every variant behind a switch on
// the cast's rounding and kind, or only the one the presets use. A tensor-core kernel inlines
// cast_quad at every block it casts (eight times in the dK/dV kernel), so that switch multiplies
// its code; a kernel with a fixed encoder is launched only for the casts it fits (quad_encoder).
// The nearest-even encoder also fixes the scale rule to floor, the presets' for P and dS
// (finish_floor_scale); the stochastic one takes any rule (the mxfp4 preset's dS: even).
// kNoMx compiles no MX encoder at all, for casts to bfloat16 (or none): the bf16 recipe's
// attention, whose kernels the MX code would otherwise hold to fewer blocks per SM through its
// registers.
enum class QuadEncoder { kAny, kNearestEvenFloat, kStochasticFloat, kNoMx };

inline QuadEncoder quad_encoder(const TileCast& c) {
  if (c.kind != TileCast::Kind::kMx) return QuadEncoder::kNoMx;
  if (traits(c.spec.format).is_integer || c.spec.asymmetric) return QuadEncoder::kAny;
  if (c.spec.rounding == Rounding::kNearestEven) {
    return c.spec.scale_rule == ScaleRule::kFloor ? QuadEncoder::kNearestEvenFloat
                                                  : QuadEncoder::kAny;
  }
  if (c.spec.rounding == Rounding::kStochastic) return QuadEncoder::kStochasticFloat;
  return QuadEncoder::kAny;
}

// Calls fn.template operator()<E>() with the encoder that kernels compile in for a cast
// (quad_encoder): a fixed one only where the presets' casts take it (fewer kernels to build),
// else kAny.
template <class Fn>
void with_encoder(QuadEncoder e, Fn fn) {
  switch (e) {
    case QuadEncoder::kNearestEvenFloat:
      fn.template operator()<QuadEncoder::kNearestEvenFloat>();
      break;
    case QuadEncoder::kStochasticFloat:
      fn.template operator()<QuadEncoder::kStochasticFloat>();
      break;
    case QuadEncoder::kAny:
      fn.template operator()<QuadEncoder::kAny>();
      break;
    case QuadEncoder::kNoMx:
      fn.template operator()<QuadEncoder::kNoMx>();
      break;
  }
}

// The slot of a quad's value v[k] in its block of 32 (the layout of cast_quad below).
__device__ __forceinline__ int quad_slot(int k) {
  return 8 * (k >> 1) + 2 * int(threadIdx.x & 3) + (k & 1);
}

// The asymmetric offset of a block held in quads, its first `real` slots real (cast_quad's
// layout; meaningless for a block with a NaN or an infinity). Every lane must call it. The CPU
// takes the block's min and max in slot order, an equal value never replacing an earlier one (which
// decides between +0 and -0), so each lane's candidates carry their slots, and the earlier slot
// wins a tie across lanes. Sets the offset and replaces amax by the largest magnitude after the
// shift.
__device__ __forceinline__ void quad_offset(const float (&v)[8], int real, uint32_t& amax,
                                            mx::cuda::BlockState& st) {
  using namespace mx::cuda;
  float lo = __uint_as_float(0x7F800000u), hi = __uint_as_float(0xFF800000u);
  int lo_at = 32, hi_at = 32;
#pragma unroll
  for (int k = 0; k < 8; ++k) {  // slots rise with k
    if (quad_slot(k) >= real) continue;
    if (v[k] < lo) lo = v[k], lo_at = quad_slot(k);
    if (v[k] > hi) hi = v[k], hi_at = quad_slot(k);
  }
  for (int o = 1; o < 4; o <<= 1) {
    const float olo = __shfl_xor_sync(kFullWarp, lo, o), ohi = __shfl_xor_sync(kFullWarp, hi, o);
    const int olo_at = __shfl_xor_sync(kFullWarp, lo_at, o);
    const int ohi_at = __shfl_xor_sync(kFullWarp, hi_at, o);
    if (olo < lo || (olo == lo && olo_at < lo_at)) lo = olo, lo_at = olo_at;
    if (ohi > hi || (ohi == hi && ohi_at < hi_at)) hi = ohi, hi_at = ohi_at;
  }
  if (lo > hi) lo = hi = 0.0f;  // no real slot
  st.offset = f32_to_bf16_bits(__fadd_rn(__fmul_rn(hi, 0.5f), __fmul_rn(lo, 0.5f)));
  st.m = bf16_bits_to_f32(st.offset);
  uint32_t shifted = 0;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float d = quad_slot(k) < real ? __fsub_rn(v[k], st.m) : v[k];
    shifted = max(shifted, __float_as_uint(d) & 0x7FFFFFFFu);
  }
  shifted = max(shifted, __shfl_xor_sync(kFullWarp, shifted, 1));
  amax = max(shifted, __shfl_xor_sync(kFullWarp, shifted, 2));
}

// A block of 32 held by the four lanes of a quad (lanes 4g .. 4g + 3), eight values each, as a
// row of four m16n8 accumulator tiles holds them: lane 4g + t has slots 8n + 2t + e at v[2n + e]
// (n < 4, e < 2). The block starts at position `first` along its axis; a slot at position p is
// padding when p >= `end`, and its flat index is base + stride * p. Every lane must call it.
// With kNearestEvenFloat or kStochasticFloat, the cast must be MX, symmetric, with that rounding
// and a float format (kNearestEvenFloat: under the floor scale rule); with kNoMx, a cast to
// bfloat16 or none.
template <QuadEncoder kEncoder = QuadEncoder::kAny>
__device__ __forceinline__ void cast_quad(const DevCast& c, float (&v)[8], int64_t first,
                                          int64_t end, int64_t base, int64_t stride) {
  using namespace mx::cuda;
  if (c.kind == int(TileCast::Kind::kNone)) return;
  if (c.kind == int(TileCast::Kind::kBF16)) {
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = bf16_round(v[k]);
    return;
  }
  if constexpr (kEncoder != QuadEncoder::kNoMx) {
    const DevSpec& s = c.spec;
    const int t = int(threadIdx.x & 3);
    // Slots [0, real) of the block lie before `end`. Both tests below are uniform over the warp's
    // blocks in the tensor-core kernels (whole blocks but at a tensor's end; one flush setting), so
    // they branch around their loops rather than predicating every value.
    const int64_t left = end - first;
    const int real = left >= 32 ? 32 : left <= 0 ? 0 : int(left);
    if (real < 32) {
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        if (8 * (k >> 1) + 2 * t + (k & 1) >= real) v[k] = 0.0f;
      }
    }
    if (s.flush) {
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = flush_sub(v[k]);
    }
    uint32_t amax = 0;
#pragma unroll
    for (int k = 0; k < 8; ++k) amax = max(amax, __float_as_uint(v[k]) & 0x7FFFFFFFu);
    amax = max(amax, __shfl_xor_sync(kFullWarp, amax, 1));
    amax = max(amax, __shfl_xor_sync(kFullWarp, amax, 2));
    BlockState st{};
    st.nan_block = amax >= 0x7F800000u;
    st.m = 0.0f;
    // Asymmetric casts take the general encoder (cast_element): they are rare, and a fixed
    // encoder is only compiled for the presets' symmetric casts.
    const bool asym = kEncoder == QuadEncoder::kAny && s.asym;
    if (asym) {
      // Every lane shuffles (a warp's quads hold different blocks, NaN ones among them); a NaN
      // block's result is unused.
      const uint32_t raw = amax;
      quad_offset(v, real, amax, st);
      if (st.nan_block) amax = raw, st.m = 0.0f;
    }
    if constexpr (kEncoder == QuadEncoder::kNearestEvenFloat) {
      finish_floor_scale(s, amax, st);
    } else {
      finish_scale(s, amax, st);
    }
    if (st.nan_block) {
#pragma unroll
      for (int k = 0; k < 8; ++k) v[k] = __uint_as_float(kNanF32);
      return;
    }
    if (asym) {
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int slot = quad_slot(k);
        v[k] = slot < real ? cast_element(c, st, v[k], base + stride * (first + slot), s.f.decode)
                           : 0.0f;
      }
      return;
    }
    if constexpr (kEncoder == QuadEncoder::kNearestEvenFloat) {
      encode_quad<Rounding::kNearestEven, false>(c, st, v, first, base, stride);
      return;
    } else if constexpr (kEncoder == QuadEncoder::kStochasticFloat) {
      encode_quad<Rounding::kStochastic, false>(c, st, v, first, base, stride);
      return;
    }
    switch (Rounding(c.rounding)) {
      case Rounding::kNearestEven:
        c.integer ? encode_quad<Rounding::kNearestEven, true>(c, st, v, first, base, stride)
                  : encode_quad<Rounding::kNearestEven, false>(c, st, v, first, base, stride);
        break;
      case Rounding::kNearestAway:
        c.integer ? encode_quad<Rounding::kNearestAway, true>(c, st, v, first, base, stride)
                  : encode_quad<Rounding::kNearestAway, false>(c, st, v, first, base, stride);
        break;
      case Rounding::kTowardZero:
        c.integer ? encode_quad<Rounding::kTowardZero, true>(c, st, v, first, base, stride)
                  : encode_quad<Rounding::kTowardZero, false>(c, st, v, first, base, stride);
        break;
      case Rounding::kStochastic:
        c.integer ? encode_quad<Rounding::kStochastic, true>(c, st, v, first, base, stride)
                  : encode_quad<Rounding::kStochastic, false>(c, st, v, first, base, stride);
        break;
    }
  }
}

}  // namespace mx::nn::cuda
