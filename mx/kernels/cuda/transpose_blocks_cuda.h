// MX storage of a matrix cast down its columns, rearranged into the storage of its transpose
// cast along rows. The products of mx_gemm.h take both operands with blocks along K, stored row
// after row; a training step's backward products reduce over the rows of their operands (dx =
// dy W reduces over W's rows, dW = dyᵀ x over the tokens), whose casts run down the columns.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace mx::cuda {

// `elements` and `scales` hold a [rows, cols] matrix quantized with blocks of 32 along axis 0
// (mx_tensor.h: block (r / 32, c) is block number (r / 32) * cols + c, its codes
// `block_bytes` bytes). Writes the same blocks into `out_elements` and `out_scales` in the order
// of the [cols, rows] transpose quantized along its rows: block (c, r / 32) at c * ceil(rows /
// 32) + r / 32. The bytes equal quantize_cuda of the transpose along axis -1 wherever the blocks'
// casts do not depend on their position (every rounding but stochastic). block_bytes is 16, 24 or
// 32 (4-, 6- and 8-bit codes); code buffers 8-byte aligned. Enqueued on `stream`; a non-empty
// result is a one-line reason, and then nothing was launched.
std::string transpose_column_blocks_cuda(const uint8_t* elements, const uint8_t* scales,
                                         int64_t rows, int64_t cols, int block_bytes,
                                         uint8_t* out_elements, uint8_t* out_scales,
                                         cudaStream_t stream);

}  // namespace mx::cuda
