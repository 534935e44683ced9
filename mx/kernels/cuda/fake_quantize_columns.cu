// Fake-quantize of blocks of 32 along an axis other than the last (32 x 1 tiles), the case that
// the general quantize kernel reaches only through its slow index map. See NOTES.md.
#include "mx/kernels/cuda/fake_quantize_columns.cuh"

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/fake_tile_rows.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

// Fake-quantize of blocks of 32 along an axis other than the last (tiles 32 x 1 over [outer,
// rows, cols]): one thread per block, and the lanes of a warp on neighbouring columns, so each of
// a warp's 32 strided loads and stores is one contiguous run. (The generic quantize_kernel
// recomputes every slot's index with 64-bit divisions and ran these casts at a few percent of
// the bandwidth.)
// One column block: the values of column i0 % cols from flat index i0 on, one row apart, those
// of `mask` present. All 32 loads first, then the conversions: a load whose value is used at
// once (load_value's per-element dtype branch) would leave one load in flight per warp.
template <Rounding kMode, bool kInteger>
__device__ __forceinline__ void fake_column_block(const DevSpec& s, const void* in_base,
                                                  int in_dtype, void* out, int out_dtype,
                                                  int64_t i0, int64_t cols, uint32_t mask) {
  float v[32];
  if (in_dtype == int(DType::kF32)) {
    const float* in = static_cast<const float*>(in_base) + i0;
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = (mask >> j) & 1u ? __ldg(in + j * cols) : 0.0f;
  } else {
    const uint16_t* in = static_cast<const uint16_t*>(in_base) + i0;
    uint16_t h[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) h[j] = (mask >> j) & 1u ? __ldg(in + j * cols) : uint16_t(0);
    const bool bf16 = in_dtype == int(DType::kBF16);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = bf16 ? bf16_bits_to_f32(h[j]) : fp16_bits_to_f32(h[j]);
  }
  const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
  if (!st.nan_block) values32<kMode, kInteger>(s, st, v, StridedDraws(s, i0, cols));
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    if ((mask >> j) & 1u) {
      store_out(out, out_dtype, i0 + j * cols, st.nan_block ? __uint_as_float(kNanF32) : v[j]);
    }
  }
}

// Fake-quantize of blocks of 32 along an axis other than the last (tiles 32 x 1 over [outer,
// rows, cols]): one thread per block, and the lanes of a warp on neighbouring columns, so each of
// a warp's 32 strided loads and stores is one contiguous run. (The generic quantize_kernel
// recomputes every slot's index with 64-bit divisions and ran these casts at a few percent of
// the bandwidth.)
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256) fake_columns_kernel(__grid_constant__ const QuantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int64_t cols = P.g.cols, per_outer = P.g.tiles_down * cols;
  const int64_t o = b / per_outer, t = b % per_outer;
  const int64_t row0 = t / cols * 32, left = P.g.rows - row0;
  const uint32_t mask = left >= 32 ? 0xFFFFFFFFu : (1u << left) - 1u;
  const int64_t i0 = (o * P.g.rows + row0) * cols + t % cols;
  fake_column_block<kMode, kInteger>(P.s, P.in, P.in_dtype, P.fake_out, P.fake_dtype, i0, cols,
                                     mask);
}

// The same over several float32 matrices, bfloat16 out, in one launch: thread b takes column
// block b of the batch, in the matrix whose first_block is the last at or below b (a binary
// search over a few dozen), and within it the block fake_columns_kernel gives that index.
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256)
    fake_columns_batch_kernel(const DevSpec s, const ColumnCastMatrix* matrices, int count,
                              int64_t total_blocks) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= total_blocks) return;
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (matrices[mid].first_block <= b) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const ColumnCastMatrix m = matrices[lo];
  const int64_t t = b - m.first_block;
  const int64_t row0 = t / m.cols * 32, left = m.rows - row0;
  const uint32_t mask = left >= 32 ? 0xFFFFFFFFu : (1u << left) - 1u;
  fake_column_block<kMode, kInteger>(s, m.in, int(DType::kF32), m.out, int(DType::kBF16),
                                     row0 * m.cols + t % m.cols, m.cols, mask);
}

template <Rounding M, bool I>
struct LaunchFakeColumnsBatch {
  static void run(const DevSpec& s, const ColumnCastMatrix* matrices, int count,
                  int64_t total_blocks, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (total_blocks + threads - 1) / threads;
    fake_columns_batch_kernel<M, I>
        <<<unsigned(grid), threads, 0, stream>>>(s, matrices, count, total_blocks);
  }
};

template <Rounding M, bool I>
struct LaunchFakeColumns {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.num_blocks + threads - 1) / threads;
    fake_columns_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

// The same for 16-bit input and bfloat16 output, through shared memory: a block of 256 threads
// takes a tile of 32 rows by 256 columns, reads it row by row (16-byte loads where every row
// starts on a 16-byte boundary, else 2-byte loads, a warp's 64 bytes contiguous), casts one
// column block per thread from the tile, and writes the tile back the same way. A warp's column
// reads and writes touch 16 consecutive words, free of bank conflicts. (One thread per column
// with strided loads ran at about 40% of the copy bandwidth on an H200, this at about 66%;
// walking several tiles per block with the next one's loads in flight gained nothing.) The tile
// moves through TileRows (fake_tile_rows.cuh).
//
// Five blocks per SM (48 registers, a few spilled) measured 10% faster than four at 16384 x
// 16384 on an H200. Stochastic rounding's draws need more registers: the same cap slowed it, and
// it stays at four blocks (64 registers).
template <Rounding kMode, bool kInteger, bool kVectors>
__global__ void __launch_bounds__(kFakeTileCols, kMode == Rounding::kStochastic ? 4 : 5)
    fake_column_tiles_kernel(__grid_constant__ const QuantParams P) {
  __shared__ __align__(16) uint16_t tile[32][kFakeTileCols];
  const int64_t cols = P.g.cols, rows = P.g.rows;
  const int64_t c0 = int64_t(blockIdx.x) * kFakeTileCols, r0 = int64_t(blockIdx.y) * 32;
  const int64_t first = (int64_t(blockIdx.z) * rows + r0) * cols + c0;
  const int rows_here = int(rows - r0 < 32 ? rows - r0 : 32);
  const int cols_here = int(cols - c0 < kFakeTileCols ? cols - c0 : kFakeTileCols);
  TileRows<kVectors> words;
  words.load(static_cast<const uint16_t*>(P.in) + first, cols, rows_here, cols_here);
  words.to_tile(tile);
  __syncthreads();
  const int t = int(threadIdx.x);
  if (t < cols_here) {
    const bool bf16_in = P.in_dtype == int(DType::kBF16);
    float v[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      v[j] = bf16_in ? bf16_bits_to_f32(tile[j][t]) : fp16_bits_to_f32(tile[j][t]);
    }
    const uint32_t mask = rows_here >= 32 ? 0xFFFFFFFFu : (1u << rows_here) - 1u;
    const DevSpec& s = P.s;
    const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
    if (!st.nan_block) values32<kMode, kInteger>(s, st, v, StridedDraws(s, first + t, cols));
#pragma unroll
    for (int j = 0; j < 32; ++j) tile[j][t] = st.nan_block ? uint16_t(0x7FC0) : bf16_bits_rn(v[j]);
  }
  __syncthreads();
  TileRows<kVectors>::from_tile(tile, static_cast<uint16_t*>(P.fake_out) + first, cols, rows_here,
                                cols_here);
}

template <Rounding M, bool I>
struct LaunchFakeColumnTiles {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const dim3 grid(unsigned((P.g.cols + kFakeTileCols - 1) / kFakeTileCols),
                    unsigned(P.g.tiles_down), unsigned(P.g.outer));
    const bool vectors = P.g.cols % 8 == 0 && (reinterpret_cast<uintptr_t>(P.in) & 15) == 0 &&
                         (reinterpret_cast<uintptr_t>(P.fake_out) & 15) == 0;
    if (vectors) {
      fake_column_tiles_kernel<M, I, true><<<grid, kFakeTileCols, 0, stream>>>(P);
    } else {
      fake_column_tiles_kernel<M, I, false><<<grid, kFakeTileCols, 0, stream>>>(P);
    }
  }
};

}  // namespace

void launch_fake_columns(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream) {
  dispatch<LaunchFakeColumns>(mode, integer, P, stream);
}

void launch_fake_columns_batch(const DevSpec& s, const ColumnCastMatrix* matrices, int count,
                               int64_t total_blocks, Rounding mode, bool integer,
                               cudaStream_t stream) {
  dispatch<LaunchFakeColumnsBatch>(mode, integer, s, matrices, count, total_blocks, stream);
}

bool fake_column_tiles_apply(const QuantParams& P) {
  return P.in_dtype != int(DType::kF32) && P.fake_dtype == int(DType::kBF16) &&
         P.g.tiles_down <= 65535 && P.g.outer <= 65535 &&
         (P.g.cols + kFakeTileCols - 1) / kFakeTileCols <= int64_t(0x7FFFFFFF);
}

void launch_fake_column_tiles(const QuantParams& P, Rounding mode, bool integer,
                              cudaStream_t stream) {
  dispatch<LaunchFakeColumnTiles>(mode, integer, P, stream);
}

}  // namespace mx::cuda
