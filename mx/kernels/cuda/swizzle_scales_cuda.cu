#include "mx/kernels/cuda/swizzle_scales_cuda.h"

#include <algorithm>

#include "mx/core/layout_swizzle.h"

namespace mx::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per 4-byte word of the output, in output order so that stores coalesce. A word is
// one row's 4 scale columns of one tile: inside a 512-byte tile, word w holds row
// (w % 4) * 32 + w / 4 of the tile (the (r % 32) * 16 + (r / 32) * 4 byte offset read as words).
__global__ void swizzle_scales_kernel(const uint8_t* __restrict__ scales, int64_t rows,
                                      int64_t cols, int64_t tiles_across, int64_t words,
                                      uint32_t* __restrict__ out) {
  for (int64_t w = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; w < words;
       w += int64_t(gridDim.x) * blockDim.x) {
    const int64_t tile = w / 128;
    const int64_t in_tile = w % 128;
    const int64_t row = (tile / tiles_across) * 128 + (in_tile % 4) * 32 + in_tile / 4;
    const int64_t col0 = (tile % tiles_across) * 4;
    uint32_t word = 0;
    if (row < rows) {
      const uint8_t* src = scales + row * cols;
      for (int64_t c = 0; c < 4 && col0 + c < cols; ++c) {
        word |= uint32_t(src[col0 + c]) << (8 * c);
      }
    }
    out[w] = word;
  }
}

}  // namespace

std::string swizzle_scales_cuda(const uint8_t* scales, int64_t rows, int64_t cols,
                                uint8_t* swizzled, cudaStream_t stream) {
  if (rows < 0 || cols < 0) return "negative scale matrix dimension";
  const int64_t bytes = swizzled_scale_bytes(rows, cols);
  if (bytes == 0) return "";
  if (swizzled == nullptr) return "null swizzled scale buffer";
  if (scales == nullptr && rows * cols > 0) return "null scale buffer";
  if (reinterpret_cast<uintptr_t>(swizzled) % 4 != 0) {
    return "the swizzled scale buffer must be 4-byte aligned";
  }
  const int64_t words = bytes / 4;
  const int64_t tiles_across = (cols + 3) / 4;
  const int64_t blocks = std::min<int64_t>((words + kThreads - 1) / kThreads, int64_t{1} << 20);
  swizzle_scales_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(
      scales, rows, cols, tiles_across, words, reinterpret_cast<uint32_t*>(swizzled));
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("scale swizzle launch failed: ") + cudaGetErrorString(e);
  return "";
}

}  // namespace mx::cuda
