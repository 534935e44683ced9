// Device-side pieces shared by the CUDA kernel files: the format and spec constants passed to
// kernels, the shared exponent and block scale, the staged 16-byte store, and the arguments of
// each kernel family.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/format.h"
#include "mx/core/scale_bits.h"
#include "mx/kernels/cuda/quantize_cuda.h"

namespace mx::cuda {

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
  // Magic-number encoder (encode_mag): float formats round |y| by adding 2^(E - man_bits + 23),
  // E = max(exponent field of |y|, emin_b); integers add the fixed 2^(emin + 23).
  int emin_b;          // emin + 127 (float formats)
  uint32_t magic_add;  // floats: (23 - man_bits) << 23; integers: (emin + 150) << 23
  float max_value;     // max_normal
  int cvt;             // 1: E4M3, 2: E5M2 (hardware cvt.rn.satfinite equals RNE + clamp)
  float decode[256];
};

struct DevSpec {
  DevFormat f;
  int rule;  // ScaleRule
  bool asym;
  bool flush;
  uint8_t zero_scale;
  uint64_t key;          // stochastic stream key
  uint32_t window0_key;  // stochastic_window_key(key, 0): pairs below 2^32
};

// The constants a kernel needs for `spec` (host side; quantize_cuda.cu).
DevFormat make_dev_format(const FormatTraits& f);
DevSpec make_dev_spec(const QuantSpec& spec);

struct BlockState {
  uint8_t scale;
  uint16_t offset;
  float m;
  float inv_scale;
  bool nan_block;
};

__device__ __forceinline__ float e8m0_value(uint8_t byte) {
  if (byte == kScaleNan) return __uint_as_float(kNanF32);
  if (byte == 0) return __uint_as_float(0x00400000u);
  return __uint_as_float(uint32_t(byte) << 23);
}

// Scale byte and 1/scale from the block's final amax (after the asymmetric shift).
__device__ __forceinline__ void finish_scale(const DevSpec& s, uint32_t amax, BlockState& st) {
  st.scale = kScaleNan;
  if (!st.nan_block) {
    if (amax == 0) {
      st.scale = s.zero_scale;
    } else {
      const int e = shared_exponent_from_bits(s.f, amax, ScaleRule(s.rule));
      st.nan_block = e > 127;
      st.scale = st.nan_block ? kScaleNan : uint8_t(max(e, -127) + 127);
    }
  }
  if (st.nan_block) st.scale = kScaleNan;
  st.inv_scale = st.nan_block ? 0.0f : e8m0_value(uint8_t(127 - (int(st.scale) - 127)));
}

// finish_scale under ScaleRule::kFloor, as selects: the attention kernels cast a block in every
// lane of a quad, eight values a lane, where the general form's branches (on the rule, on a zero
// or NaN block) came to about as many instructions as casting the lane's eight values.
__device__ __forceinline__ void finish_floor_scale(const DevSpec& s, uint32_t amax,
                                                   BlockState& st) {
  // A subnormal amax is taken as if its exponent field (0) were a normal one's: with a float
  // format's emax >= 0, e <= -127 either way, which gives the same byte.
  const int e = int(amax >> 23) - 127 - s.f.emax;
  st.nan_block = st.nan_block || (amax != 0 && e > 127);
  const uint32_t byte = amax == 0 ? uint32_t(s.zero_scale) : uint32_t(max(e, -127) + 127);
  const uint32_t inv = (254u - byte) & 0xFFu;  // 1/scale's byte, as finish_scale's
  const uint32_t inv_bits = inv == 0xFFu ? kNanF32 : inv == 0 ? 0x00400000u : inv << 23;
  st.scale = st.nan_block ? kScaleNan : uint8_t(byte);
  st.inv_scale = st.nan_block ? 0.0f : __uint_as_float(inv_bits);
}

__device__ __forceinline__ uint32_t vmax_u16x2(uint32_t a, uint32_t b) {
  uint32_t d;
  asm("max.u16x2 %0, %1, %2;" : "=r"(d) : "r"(a), "r"(b));
  return d;
}

// Each lane holds N 16-byte vectors bound for dst[0, N); the L lanes of each aligned group of L
// own consecutive regions (lane i of the group at group start + i * N). When `whole` (every lane
// of the warp is here, warp-uniform) the vectors go through shared memory (`stage`: 32 * (N + 1)
// vectors for this warp) so that each store instruction writes L consecutive vectors per group:
// whole 32-byte sectors instead of halves spread over the warp's region.
template <int N>
__device__ __forceinline__ void store_group(uint4* dst, const uint4 (&x)[N], int L, bool whole,
                                            uint4* stage) {
  if (N == 1 || !whole) {
#pragma unroll
    for (int q = 0; q < N; ++q) dst[q] = x[q];
    return;
  }
  const int lane = threadIdx.x & 31, g = lane & (L - 1), g0 = lane - g;
#pragma unroll
  for (int q = 0; q < N; ++q) stage[lane * (N + 1) + q] = x[q];
  __syncwarp();
  uint4* base = dst - g * N;
#pragma unroll
  for (int q = 0; q < N; ++q) {
    const int idx = q * L + g;
    base[idx] = stage[(g0 + idx / N) * (N + 1) + idx % N];
  }
  __syncwarp();
}

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

// Arguments of the quantize and fake-quantize kernels.
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
  int group;  // blocks per thread in quantize_kernel: their codes end on a byte boundary
};

// Arguments of the dequantize kernels.
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

// Arguments of the dual quantize kernels.
struct DualParams {
  DevSpec s;
  const void* in;
  int in_dtype;
  int64_t M, K;
  int64_t row_blocks_per_row;  // ceil(K / 32)
  MxDeviceBuffers rows, cols;
};

}  // namespace mx::cuda
