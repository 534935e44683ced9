// Fake-quantize of blocks of 32 along unaligned 16-bit rows: an odd row length (the 50257-wide
// classifier gradient of GPT-2) starts every row at a different offset from a 16-byte boundary,
// so the lanes kernel, 8 values per thread, loads and stores them 2 bytes at a time.
//
// Here a thread block takes a span of consecutive blocks, which is one contiguous range of the
// tensor whatever rows it crosses. It copies the range into shared memory with 16-byte loads
// (2-byte ones only in the two vectors at its ends), casts it in place with one block per warp
// and one value per lane (a warp reads 64 consecutive bytes: no bank conflicts), and writes it
// back the same way. Output and input sit at the same offset from a 16-byte boundary, so one
// staged copy serves both directions.
#include "mx/kernels/cuda/fake_quantize_unaligned_rows.cuh"

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"

namespace mx::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kBlocksPerWarp = 16;
constexpr int kBlocksPerCta = kWarps * kBlocksPerWarp;
// The span's values plus up to 7 before its first and 7 after its last, to whole vectors.
constexpr int kStagedValues = kBlocksPerCta * 32 + 16;

__device__ __forceinline__ float value16(uint16_t h, bool bf16) {
  return bf16 ? bf16_bits_to_f32(h) : fp16_bits_to_f32(h);
}

// One block of 32 held one value per lane (lane = slot), as quantize_block casts it; `real` is
// false for the slots past the end of the block's row. Every lane of the warp must call it.
template <Rounding kMode, bool kInteger>
__device__ __forceinline__ float warp_fake_quantize(const DevSpec& s, float v, bool real,
                                                    int64_t index) {
  float x[1] = {real ? v : 0.0f};
  if (s.flush) x[0] = flush_sub(x[0]);
  uint32_t amax = __reduce_max_sync(0xFFFFFFFFu, __float_as_uint(x[0]) & 0x7FFFFFFFu);
  BlockState st{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  if (s.asym) {
    const float lo = real ? x[0] : __uint_as_float(0x7F800000u);
    const float hi = real ? x[0] : __uint_as_float(0xFF800000u);
    shift_by_offset<1>(x, real ? 1u : 0u, 32, lo, hi, amax, st);
  }
  finish_scale(s, amax, st);
  if (st.nan_block) return __uint_as_float(kNanF32);
  uint32_t dither = 0;
  if constexpr (kMode == Rounding::kStochastic) dither = dither_at(s.key, index);
  if (s.asym) {
    const uint32_t y = __float_as_uint(__fmul_rn(x[0], st.inv_scale));
    const uint32_t code = encode_lane<kMode, kInteger>(s.f, y, dither);
    return __fadd_rn(__fmul_rn(s.f.decode[code], e8m0_value(st.scale)), st.m);
  }
  // Symmetric: the magnitude rounds through encode_mag, as in the quantizer's fast paths.
  float value;
  encode_mag<kMode, kInteger>(s.f, __fmul_rn(fabsf(x[0]), st.inv_scale), dither, value);
  const uint32_t sign = __float_as_uint(x[0]) & 0x80000000u;
  if constexpr (kInteger) {
    value = sign ? __fsub_rn(0.0f, value) : value;
  } else {
    value = __uint_as_float(__float_as_uint(value) | sign);
  }
  return __fmul_rn(value, e8m0_value(st.scale));
}

// Where the blocks of a thread block's span start and end. Block b0 + i is block j0 + i of its
// run counted from run0; only (j0 + i) / blocks_per_run is left to find per block, a 32-bit
// division (a 64-bit one is a long software routine).
struct Span {
  int64_t run_len, run0;
  uint32_t blocks_per_run, j0;
  __device__ void block(int i, int64_t& first, int64_t& end) const {
    const uint32_t j = j0 + uint32_t(i);
    const uint32_t runs_on = j / blocks_per_run;
    const int64_t run = run0 + runs_on;
    first = run * run_len + int64_t(j - runs_on * blocks_per_run) * 32;
    end = min(first + 32, (run + 1) * run_len);
  }
};

// Moves values [start, stop) between global memory (value e at g[e]) and the tile (value e at
// tile[e - base], base on a 16-byte boundary of g): 16 bytes at a time wherever a whole vector
// lies inside, single values in the vectors at the two ends.
template <bool kLoad>
__device__ __forceinline__ void move_span(uint16_t* tile,
                                          std::conditional_t<kLoad, const uint16_t*, uint16_t*> g,
                                          int64_t base, int64_t start, int64_t stop) {
  const int vectors = int((stop - base + 7) / 8);
  for (int v = int(threadIdx.x); v < vectors; v += kWarps * 32) {
    const int64_t e0 = base + 8 * int64_t(v);
    uint16_t* t = tile + 8 * v;
    if (e0 >= start && e0 + 8 <= stop) {
      if constexpr (kLoad) {
        *reinterpret_cast<uint4*>(t) = __ldg(reinterpret_cast<const uint4*>(g + e0));
      } else {
        *reinterpret_cast<uint4*>(g + e0) = *reinterpret_cast<const uint4*>(t);
      }
      continue;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      if (e0 + j < start || e0 + j >= stop) continue;
      if constexpr (kLoad) {
        t[j] = __ldg(g + e0 + j);
      } else {
        g[e0 + j] = t[j];
      }
    }
  }
}

template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(kWarps * 32)
    fake_unaligned_rows_kernel(__grid_constant__ const QuantParams P) {
  __shared__ __align__(16) uint16_t tile[kStagedValues];
  __shared__ int64_t run0;
  // Each block's first value's place in the tile, and its length: found once, not per lane.
  __shared__ int block_at[kBlocksPerCta], block_len[kBlocksPerCta];
  const int64_t b0 = int64_t(blockIdx.x) * kBlocksPerCta;
  if (threadIdx.x == 0) run0 = b0 / P.g.blocks_per_run;
  __syncthreads();
  const Span span{P.g.run_len, run0, uint32_t(P.g.blocks_per_run),
                  uint32_t(b0 - run0 * P.g.blocks_per_run)};
  const int here = int(min(int64_t(kBlocksPerCta), P.g.num_blocks - b0));
  int64_t start, stop, unused;
  span.block(0, start, unused);
  span.block(here - 1, unused, stop);
  const uint16_t* in = static_cast<const uint16_t*>(P.in);
  uint16_t* out = static_cast<uint16_t*>(P.fake_out);
  // tile[i] holds value base + i; base is `start` rounded down to a 16-byte boundary of `in`.
  const int64_t base = start - int64_t((reinterpret_cast<uintptr_t>(in + start) & 15) / 2);
  if (int(threadIdx.x) < here) {
    int64_t first, end;
    span.block(int(threadIdx.x), first, end);
    block_at[threadIdx.x] = int(first - base);
    block_len[threadIdx.x] = int(end - first);
  }
  move_span<true>(tile, in, base, start, stop);
  __syncthreads();
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const bool bf16_in = P.in_dtype == int(DType::kBF16);
  for (int i = warp * kBlocksPerWarp; i < (warp + 1) * kBlocksPerWarp && i < here; ++i) {
    const int at = block_at[i] + lane;
    const bool real = lane < block_len[i];
    const float v = real ? value16(tile[at], bf16_in) : 0.0f;
    const float q = warp_fake_quantize<kMode, kInteger>(P.s, v, real, base + at);
    if (real) tile[at] = f32_to_bf16_bits(q);
  }
  __syncthreads();
  move_span<false>(tile, out, base, start, stop);
}

template <Rounding M, bool I>
struct LaunchFakeUnalignedRows {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int64_t grid = (P.g.num_blocks + kBlocksPerCta - 1) / kBlocksPerCta;
    fake_unaligned_rows_kernel<M, I><<<unsigned(grid), kWarps * 32, 0, stream>>>(P);
  }
};

}  // namespace

bool fake_unaligned_rows_apply(const QuantParams& P) {
  const uintptr_t in = reinterpret_cast<uintptr_t>(P.in);
  const uintptr_t out = reinterpret_cast<uintptr_t>(P.fake_out);
  return P.fake_out != nullptr && P.g.contiguous && P.g.k == 32 && P.in_dtype != int(DType::kF32) &&
         P.fake_dtype == int(DType::kBF16) && ((in ^ out) & 15) == 0 &&
         (P.g.run_len % 8 != 0 || (in & 15) != 0) && P.g.blocks_per_run < (int64_t{1} << 31) &&
         (P.g.num_blocks + kBlocksPerCta - 1) / kBlocksPerCta <= int64_t(0x7FFFFFFF);
}

void launch_fake_unaligned_rows(const QuantParams& P, Rounding mode, bool integer,
                                cudaStream_t stream) {
  dispatch<LaunchFakeUnalignedRows>(mode, integer, P, stream);
}

}  // namespace mx::cuda
