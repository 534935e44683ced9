// Fake-quantize of blocks of 32 along unaligned 16-bit rows: an odd row length (the 50257-wide
// classifier gradient of GPT-2) starts every row at a different offset from a 16-byte boundary,
// so the lanes kernel, 8 values per thread, loads and stores them 2 bytes at a time.
//
// Here a thread block takes a span of consecutive blocks, which is one contiguous range of the
// tensor whatever rows it crosses. It copies the range into shared memory with 16-byte loads
// (2-byte ones only in the two vectors at its ends), casts it, and writes it back the same way.
// Output and input sit at the same offset from a 16-byte boundary, so one staged copy serves
// both directions. The cast takes one block per thread, as the aligned kernels do, so that a
// block's scale is worked out once rather than in each of 32 lanes: the warps first move each
// block to its own 68-byte slot (34 values: at 17 words apart, the 32 threads of a warp read
// their blocks' words from 32 different banks), with zeros past a row's end, and move the cast
// values back afterwards.
#include "mx/kernels/cuda/fake_quantize_unaligned_rows.cuh"

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kBlocksPerCta = kWarps * 32;  // one per thread
// The span's values plus up to 7 before its first and 7 after its last, to whole vectors.
constexpr int kStagedValues = kBlocksPerCta * 32 + 16;
constexpr int kSlotWords = 17;  // a block's slot: 32 values and one spare pair

__device__ __forceinline__ float value16(uint16_t h, bool bf16) {
  return bf16 ? bf16_bits_to_f32(h) : fp16_bits_to_f32(h);
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
// lies inside, single values in the vectors at the two ends. Loads are all issued before the
// first store to the tile, so that each thread keeps its five 16-byte loads in flight together.
constexpr int kVectorsPerThread = (kStagedValues / 8 + kWarps * 32 - 1) / (kWarps * 32);

__device__ __forceinline__ bool whole_vector(int64_t e0, int64_t start, int64_t stop) {
  return e0 >= start && e0 + 8 <= stop;
}

__device__ __forceinline__ void load_span(uint16_t* tile, const uint16_t* g, int64_t base,
                                          int64_t start, int64_t stop) {
  const int vectors = int((stop - base + 7) / 8);
  uint4 r[kVectorsPerThread];
#pragma unroll
  for (int i = 0; i < kVectorsPerThread; ++i) {
    const int v = int(threadIdx.x) + i * kWarps * 32;
    const int64_t e0 = base + 8 * int64_t(v);
    if (v < vectors && whole_vector(e0, start, stop)) {
      r[i] = __ldg(reinterpret_cast<const uint4*>(g + e0));
    } else if (v < vectors) {
      for (int j = 0; j < 8; ++j) {
        if (e0 + j >= start && e0 + j < stop) tile[8 * v + j] = __ldg(g + e0 + j);
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kVectorsPerThread; ++i) {
    const int v = int(threadIdx.x) + i * kWarps * 32;
    if (v < vectors && whole_vector(base + 8 * int64_t(v), start, stop)) {
      *reinterpret_cast<uint4*>(tile + 8 * v) = r[i];
    }
  }
}

__device__ __forceinline__ void store_span(const uint16_t* tile, uint16_t* g, int64_t base,
                                           int64_t start, int64_t stop) {
  const int vectors = int((stop - base + 7) / 8);
  for (int v = int(threadIdx.x); v < vectors; v += kWarps * 32) {
    const int64_t e0 = base + 8 * int64_t(v);
    if (whole_vector(e0, start, stop)) {
      *reinterpret_cast<uint4*>(g + e0) = *reinterpret_cast<const uint4*>(tile + 8 * v);
      continue;
    }
    for (int j = 0; j < 8; ++j) {
      if (e0 + j >= start && e0 + j < stop) g[e0 + j] = tile[8 * v + j];
    }
  }
}

// The cast of one block held in its slot (`len` real values, zeros after them) whose first value
// is element `first` of the tensor, in place: bfloat16 pairs out.
template <Rounding kMode, bool kInteger>
__device__ __forceinline__ void cast_slot(const DevSpec& s, uint32_t* slot, int len, bool bf16_in,
                                          int64_t first) {
  float v[32];
#pragma unroll
  for (int w = 0; w < 16; ++w) {
    const uint32_t pair = slot[w];
    v[2 * w] = value16(uint16_t(pair & 0xFFFFu), bf16_in);
    v[2 * w + 1] = value16(uint16_t(pair >> 16), bf16_in);
  }
  const uint32_t mask = len >= 32 ? 0xFFFFFFFFu : (1u << len) - 1u;
  const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
  if (!st.nan_block) {
    // One hash per pair of values, except where the block crosses a 2^33 window of the stream.
    if (kMode == Rounding::kStochastic && (first >> 33) == ((first + 31) >> 33)) {
      values32<kMode, kInteger>(s, st, v, PairedDraws::starting_at(s, first));
    } else {
      values32<kMode, kInteger>(s, st, v, StridedDraws(s, first, 1));
    }
  }
#pragma unroll
  for (int w = 0; w < 16; ++w) {
    slot[w] = st.nan_block ? 0x7FC07FC0u : pack_bf16x2(v[2 * w], v[2 * w + 1]);
  }
}

template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(kWarps * 32)
    fake_unaligned_rows_kernel(__grid_constant__ const QuantParams P) {
  __shared__ __align__(16) uint16_t tile[kStagedValues];
  __shared__ __align__(16) uint32_t slots[kBlocksPerCta * kSlotWords];
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
  load_span(tile, in, base, start, stop);
  __syncthreads();
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  uint16_t* slot_values = reinterpret_cast<uint16_t*>(slots);
  for (int i = warp; i < here; i += kWarps) {
    slot_values[i * 2 * kSlotWords + lane] = lane < block_len[i] ? tile[block_at[i] + lane] : 0;
  }
  __syncthreads();
  const int mine = int(threadIdx.x);
  if (mine < here) {
    cast_slot<kMode, kInteger>(P.s, slots + mine * kSlotWords, block_len[mine],
                               P.in_dtype == int(DType::kBF16), base + block_at[mine]);
  }
  __syncthreads();
  for (int i = warp; i < here; i += kWarps) {
    if (lane < block_len[i]) tile[block_at[i] + lane] = slot_values[i * 2 * kSlotWords + lane];
  }
  __syncthreads();
  store_span(tile, out, base, start, stop);
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
