// A 32-row x 256-column tile of 16-bit values moved between global and shared memory by a
// block of 256 threads (fake_quantize_columns.cu, fake_quantize_dual.cu): 16-byte pieces where
// every row starts on a 16-byte boundary, else 2-byte values, a warp's 64 bytes contiguous.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

namespace mx::cuda {

constexpr int kFakeTileCols = 256;

// The words of a 32 x 256 tile that one thread moves between global and shared memory: 16-byte
// pieces or single 16-bit values. All of a thread's loads are issued before any store.
template <bool kVectors>
struct TileRows {
  static constexpr int kPieces = kFakeTileCols / 8;  // 16-byte pieces per row
  static constexpr int kWords = kVectors ? 4 : 32;
  using Word = std::conditional_t<kVectors, uint4, uint16_t>;
  Word w[kWords];

  // Row r and column c of this thread's k-th word.
  __device__ static int row(int k) {
    return kVectors ? (int(threadIdx.x) + k * kFakeTileCols) / kPieces : k;
  }
  __device__ static int col(int) {
    return kVectors ? (int(threadIdx.x) % kPieces) * 8 : int(threadIdx.x);
  }
  __device__ void load(const uint16_t* in, int64_t cols, int rows_here, int cols_here) {
#pragma unroll
    for (int k = 0; k < kWords; ++k) {
      const int r = row(k), c = col(k);
      const bool inside = r < rows_here && c < cols_here;
      if constexpr (kVectors) {
        w[k] = inside ? __ldg(reinterpret_cast<const uint4*>(in + r * cols + c))
                      : make_uint4(0, 0, 0, 0);
      } else {
        w[k] = inside ? __ldg(in + r * cols + c) : uint16_t(0);
      }
    }
  }
  __device__ void to_tile(uint16_t (&tile)[32][kFakeTileCols]) const {
#pragma unroll
    for (int k = 0; k < kWords; ++k) *reinterpret_cast<Word*>(&tile[row(k)][col(k)]) = w[k];
  }
  __device__ static void from_tile(const uint16_t (&tile)[32][kFakeTileCols], uint16_t* out,
                                   int64_t cols, int rows_here, int cols_here) {
#pragma unroll
    for (int k = 0; k < kWords; ++k) {
      const int r = row(k), c = col(k);
      if (r < rows_here && c < cols_here) {
        *reinterpret_cast<Word*>(out + r * cols + c) = *reinterpret_cast<const Word*>(&tile[r][c]);
      }
    }
  }
};

}  // namespace mx::cuda
