#include "mx/kernels/cuda/transpose_blocks_cuda.h"

#include <algorithm>

namespace mx::cuda {

namespace {

constexpr int kThreads = 256;

// One thread per block, in output order so that the stores coalesce; each block moves as
// kWords 8-byte words.
template <int kWords>
__global__ void transpose_column_blocks_kernel(const uint2* __restrict__ elements,
                                               const uint8_t* __restrict__ scales,
                                               int64_t block_rows, int64_t cols,
                                               uint2* __restrict__ out_elements,
                                               uint8_t* __restrict__ out_scales) {
  const int64_t blocks = block_rows * cols;
  for (int64_t out = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; out < blocks;
       out += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = out / block_rows;
    const int64_t rb = out % block_rows;
    const int64_t in = rb * cols + c;
    uint2 words[kWords];
#pragma unroll
    for (int w = 0; w < kWords; ++w) words[w] = elements[in * kWords + w];
#pragma unroll
    for (int w = 0; w < kWords; ++w) out_elements[out * kWords + w] = words[w];
    out_scales[out] = scales[in];
  }
}

}  // namespace

std::string transpose_column_blocks_cuda(const uint8_t* elements, const uint8_t* scales,
                                         int64_t rows, int64_t cols, int block_bytes,
                                         uint8_t* out_elements, uint8_t* out_scales,
                                         cudaStream_t stream) {
  if (rows < 0 || cols < 0) return "negative matrix dimension";
  if (block_bytes != 16 && block_bytes != 24 && block_bytes != 32) {
    return "block transpose: blocks of " + std::to_string(block_bytes) +
           " bytes (expected 16, 24 or 32)";
  }
  const int64_t block_rows = (rows + 31) / 32;
  const int64_t blocks = block_rows * cols;
  if (blocks == 0) return "";
  if (elements == nullptr || scales == nullptr || out_elements == nullptr ||
      out_scales == nullptr) {
    return "block transpose: null buffer";
  }
  if (reinterpret_cast<uintptr_t>(elements) % 8 != 0 ||
      reinterpret_cast<uintptr_t>(out_elements) % 8 != 0) {
    return "block transpose: code buffers must be 8-byte aligned";
  }
  const int64_t grid = std::min<int64_t>((blocks + kThreads - 1) / kThreads, int64_t{1} << 20);
  const auto* in = reinterpret_cast<const uint2*>(elements);
  auto* out = reinterpret_cast<uint2*>(out_elements);
  switch (block_bytes / 8) {
    case 2:
      transpose_column_blocks_kernel<2>
          <<<unsigned(grid), kThreads, 0, stream>>>(in, scales, block_rows, cols, out, out_scales);
      break;
    case 3:
      transpose_column_blocks_kernel<3>
          <<<unsigned(grid), kThreads, 0, stream>>>(in, scales, block_rows, cols, out, out_scales);
      break;
    default:
      transpose_column_blocks_kernel<4>
          <<<unsigned(grid), kThreads, 0, stream>>>(in, scales, block_rows, cols, out, out_scales);
      break;
  }
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return std::string("block transpose launch failed: ") + cudaGetErrorString(e);
  return "";
}

}  // namespace mx::cuda
