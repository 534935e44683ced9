// The swizzled 128 x 4 scale layout of mx/core/layout_swizzle.h, written on the GPU: the same
// bytes as mx::swizzle_scales, padding zero. Blackwell block-scaled products read their E8M0
// scales this way; this kernel itself runs on any GPU.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace mx::cuda {

// Device row-major `scales` (rows x cols bytes) -> device `swizzled`
// (mx::swizzled_scale_bytes(rows, cols) bytes, 4-byte aligned; every byte is written).
// Enqueued on `stream`; a non-empty result is a one-line reason, and then nothing was launched.
std::string swizzle_scales_cuda(const uint8_t* scales, int64_t rows, int64_t cols,
                                uint8_t* swizzled, cudaStream_t stream);

}  // namespace mx::cuda
