// Fake-quantize of a bfloat16 matrix along its rows and down its columns in one read: the two
// casts of an operand that feeds two products (the backward's output gradient: along its rows
// for the input gradient's product, down its columns for the weight gradient's).
//
// A block of 256 threads takes a 32 x 256 tile into shared memory (TileRows, as the column
// tiles kernel does). Each thread casts one column block (32 values down column t) and one row
// block (row t / 8, columns 32 (t % 8) onwards: a tile's row holds exactly eight blocks, since
// tiles start at multiples of 256), with the codecs of the single casts: the results are theirs
// bit for bit. The casts go to tiles of their own (48 KB in all; holding the row casts in
// registers until every thread had read the input tile spilled), written out row by row.
// Stochastic column casts of an even-width matrix draw each pair's hash once, into the row
// casts' tile before those are made, for the two columns that share it (SharedPairDraws).
// On request each column thread also sums its 32 values, as the bias gradient's partials.
#include "mx/kernels/cuda/fake_quantize_dual.cuh"

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/fake_tile_rows.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

// The stochastic dithers down one column of a tile whose pair hashes were drawn once into
// shared memory, row after row: in an even-width matrix the values of columns 2u and 2u + 1 of
// a row form one pair of flat indices, so one hash serves both columns' casts (the low half the
// even column, the high half the odd one) where each column's thread would draw it again.
struct SharedPairDraws {
  const uint32_t* hash;  // row 0's hash of the column's pair
  int row_stride;        // pairs per row of the tile
  uint32_t shift;        // 0 for an even column, 16 for an odd one
  __device__ __forceinline__ uint32_t next() {
    const uint32_t bits = *hash;
    hash += row_stride;
    return (bits >> shift) & 0xFFFFu;
  }
};

// Three blocks per SM leave room for the two casts' registers: held to four, it spilled and ran
// slower (NOTES.md).
template <Rounding kMode, bool kInteger, bool kVectors>
__global__ void __launch_bounds__(kFakeTileCols, 3)
    fake_dual_tiles_kernel(__grid_constant__ const QuantParams R,
                           __grid_constant__ const QuantParams C, int64_t real_cols,
                           float* column_sums) {
  __shared__ __align__(16) uint16_t tile[32][kFakeTileCols];
  __shared__ __align__(16) uint16_t down[32][kFakeTileCols];
  __shared__ __align__(16) uint16_t across[32][kFakeTileCols];
  const int64_t cols = C.g.cols, rows = C.g.rows;
  const int64_t c0 = int64_t(blockIdx.x) * kFakeTileCols, r0 = int64_t(blockIdx.y) * 32;
  const int64_t first = r0 * cols + c0;
  const int rows_here = int(rows - r0 < 32 ? rows - r0 : 32);
  const int cols_here = int(cols - c0 < kFakeTileCols ? cols - c0 : kFakeTileCols);
  TileRows<kVectors> words;
  words.load(static_cast<const uint16_t*>(C.in) + first, cols, rows_here, cols_here);
  words.to_tile(tile);
  const int t = int(threadIdx.x);
  // Stochastic casts of an even-width matrix whose pairs all lie in the first window: the
  // columns' pair hashes, drawn once into the row casts' tile before it is written.
  constexpr int kPairs = kFakeTileCols / 2;
  uint32_t* pair_hashes = reinterpret_cast<uint32_t*>(&across[0][0]);  // [32][kPairs]
  bool shared_draws = false;
  if constexpr (kMode == Rounding::kStochastic) {
    shared_draws = real_cols % 2 == 0 && (uint64_t(rows) * uint64_t(real_cols)) >> 33 == 0;
    if (shared_draws) {
      for (int i = t; i < 32 * kPairs; i += kFakeTileCols) {
        const uint64_t index =
            uint64_t(r0 + i / kPairs) * uint64_t(real_cols) + uint64_t(c0 + 2 * (i % kPairs));
        pair_hashes[i] = stochastic_pair_bits(C.s.window0_key, uint32_t(index >> 1));
      }
    }
  }
  __syncthreads();

  // Down column t: as fake_column_tiles_kernel.
  if (t < cols_here) {
    if (column_sums != nullptr) {
      // The tile's column sum, before the cast takes the registers: eight runs of four rows,
      // each summed from zero, added in order from zero (rows past the matrix read zero).
      float total = 0.0f;
#pragma unroll
      for (int g = 0; g < 8; ++g) {
        float run = 0.0f;
#pragma unroll
        for (int r = 0; r < 4; ++r) run = __fadd_rn(run, bf16_bits_to_f32(tile[4 * g + r][t]));
        total = __fadd_rn(total, run);
      }
      column_sums[int64_t(blockIdx.y) * cols + c0 + t] = total;
    }
    float v[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = bf16_bits_to_f32(tile[j][t]);
    const uint32_t mask = rows_here >= 32 ? 0xFFFFFFFFu : (1u << rows_here) - 1u;
    const BlockState st = scale32(C.s, v, amax_f32(v, 32), mask, 1);
    if (!st.nan_block) {
      if (shared_draws) {
        values32<kMode, kInteger>(
            C.s, st, v, SharedPairDraws{pair_hashes + t / 2, kPairs, (t & 1) != 0 ? 16u : 0u});
      } else {
        values32<kMode, kInteger>(C.s, st, v,
                                  StridedDraws(C.s, r0 * real_cols + c0 + t, real_cols));
      }
    }
#pragma unroll
    for (int j = 0; j < 32; ++j) down[j][t] = st.nan_block ? uint16_t(0x7FC0) : bf16_bits_rn(v[j]);
  }

  if (shared_draws) __syncthreads();  // the row casts write over the pair hashes

  // Along row r from column 32 b: as the row casts (the block's values from its flat index on,
  // slots past the row's end masked). A block wholly in the zero padding past real_cols stays
  // zero.
  const int r = t / 8, c = 32 * (t % 8);
  const int real = int(min(int64_t(cols_here - c), real_cols - (c0 + c)));
  if (r < rows_here && c < cols_here) {
    uint4 out[4];
    if (real <= 0) {
#pragma unroll
      for (int q = 0; q < 4; ++q) out[q] = make_uint4(0, 0, 0, 0);
    } else {
      const uint4* src = reinterpret_cast<const uint4*>(&tile[r][c]);
      uint32_t w[16];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const uint4 x = src[q];
        w[4 * q] = x.x, w[4 * q + 1] = x.y, w[4 * q + 2] = x.z, w[4 * q + 3] = x.w;
      }
      float v[32];
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        v[2 * j] = __uint_as_float(w[j] << 16);
        v[2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
      }
      const uint32_t mask = real >= 32 ? 0xFFFFFFFFu : (1u << real) - 1u;
      const BlockState st = scale32(R.s, v, amax_f32(v, 32), mask, 1);
      if (!st.nan_block) {
        values32<kMode, kInteger>(R.s, st, v,
                                  PairedDraws::starting_at(R.s, (r0 + r) * real_cols + c0 + c));
      }
      fake_vectors_bf16(v, st.nan_block, out);
    }
    uint4* dst = reinterpret_cast<uint4*>(&across[r][c]);
#pragma unroll
    for (int q = 0; q < 4; ++q) dst[q] = out[q];
  }
  __syncthreads();
  TileRows<kVectors>::from_tile(down, static_cast<uint16_t*>(C.fake_out) + first, cols, rows_here,
                                cols_here);
  TileRows<kVectors>::from_tile(across, static_cast<uint16_t*>(R.fake_out) + first, cols, rows_here,
                                cols_here);
}

template <Rounding M, bool I>
struct LaunchFakeDual {
  static void run(const QuantParams& R, const QuantParams& C, int64_t real_cols, float* column_sums,
                  cudaStream_t stream) {
    const dim3 grid(unsigned((C.g.cols + kFakeTileCols - 1) / kFakeTileCols),
                    unsigned(C.g.tiles_down));
    const auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
    if (C.g.cols % 8 == 0 && aligned(C.in) && aligned(C.fake_out) && aligned(R.fake_out)) {
      fake_dual_tiles_kernel<M, I, true>
          <<<grid, kFakeTileCols, 0, stream>>>(R, C, real_cols, column_sums);
    } else {
      fake_dual_tiles_kernel<M, I, false>
          <<<grid, kFakeTileCols, 0, stream>>>(R, C, real_cols, column_sums);
    }
  }
};

}  // namespace

bool fake_dual_tiles_apply(const QuantParams& R, const QuantParams& C) {
  // C: blocks of 32 down the columns of one [rows, cols] matrix; R: blocks of 32 along each of
  // its rows, which the block grid sees as `rows` runs of `cols` values.
  const bool columns = C.g.outer == 1 && C.g.tile_rows == 32 && C.g.tile_cols == 1;
  const bool rows = R.g.outer == C.g.rows && R.g.rows == C.g.cols && R.g.cols == 1 &&
                    R.g.tile_rows == 32 && R.g.tile_cols == 1;
  return columns && rows && C.in_dtype == int(DType::kBF16) && R.in_dtype == int(DType::kBF16) &&
         C.fake_dtype == int(DType::kBF16) && R.fake_dtype == int(DType::kBF16) &&
         C.g.tiles_down <= 65535 &&
         (C.g.cols + kFakeTileCols - 1) / kFakeTileCols <= int64_t(0x7FFFFFFF);
}

void launch_fake_dual_tiles(const QuantParams& R, const QuantParams& C, int64_t real_cols,
                            Rounding mode, bool integer, cudaStream_t stream, float* column_sums) {
  dispatch<LaunchFakeDual>(mode, integer, R, C, real_cols, column_sums, stream);
}

}  // namespace mx::cuda
