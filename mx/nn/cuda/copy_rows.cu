// Row copies between strides that are not multiples of 16 bytes (ops.h, copy_rows): the
// classifier's products pad a vocabulary of 50,257 to 50,264 columns and back. cudaMemcpy2DAsync
// moves such rows at about half the bandwidth of a plain copy of the same bytes (1.39 ms against
// 0.78 ms for 16,384 rows of bfloat16 logits on an H200); element-wide loads and stores are
// coalesced whatever a row's alignment, and each warp keeps all of its loads in flight.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "mx/nn/cuda/ops.h"

namespace mx::nn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPerThread = 8;  // elements; a warp moves 256 consecutive ones of a row
constexpr int kPerBlock = kThreads * kPerThread;
constexpr int64_t kMaxGridRows = 65535;

template <class T>
__global__ void __launch_bounds__(kThreads)
    copy_rows_kernel(T* dst, int64_t dst_stride, const T* src, int64_t src_stride, int64_t width,
                     int64_t rows) {
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t first = int64_t(blockIdx.x) * kPerBlock + warp * 32 * kPerThread + lane;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const T* s = src + r * src_stride;
    T* d = dst + r * dst_stride;
    T v[kPerThread];
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int64_t c = first + 32 * k;
      if (c < width) v[k] = s[c];
    }
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int64_t c = first + 32 * k;
      if (c < width) d[c] = v[k];
    }
  }
}

}  // namespace

void copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride, int64_t width,
               int64_t rows, int element_bytes, cudaStream_t s) {
  if (width <= 0 || rows <= 0) return;
  const dim3 grid(unsigned((width + kPerBlock - 1) / kPerBlock),
                  unsigned(std::min(rows, kMaxGridRows)));
  if (element_bytes == 2) {
    copy_rows_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint16_t*>(dst), dst_stride,
                                               static_cast<const uint16_t*>(src), src_stride, width,
                                               rows);
  } else {
    copy_rows_kernel<<<grid, kThreads, 0, s>>>(static_cast<uint32_t*>(dst), dst_stride,
                                               static_cast<const uint32_t*>(src), src_stride, width,
                                               rows);
  }
}

}  // namespace mx::nn::cuda
