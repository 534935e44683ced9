// The swizzled scale layout that Blackwell block-scaled GEMMs read (cuBLASLt VEC32_UE8M0,
// TransformerEngine nvte_swizzle_scaling_factors, CUTLASS): a rows x cols scale matrix (one row
// per output row, cols = K / 32) is padded with zero bytes to rows a multiple of 128 and cols a
// multiple of 4, then cut into 128 x 4 tiles stored in row-major tile order, 512 bytes each.
// Inside a tile, scale (r, c) sits at byte (r % 32) * 16 + (r / 32) * 4 + c, so one 16-byte
// line holds rows r, r + 32, r + 64, r + 96 with their 4 columns each.
//
// Sources for the formula: cuBLAS documentation, "1D Block Scaling Factors Layout"
// (https://docs.nvidia.com/cuda/cublas/index.html#d-block-scaling-factors-layout), as written out
// by torchao's `to_blocked` (pytorch/ao, torchao/prototype/mx_formats/utils.py: view as
// [128/32=4, 32, 4] per tile, swap the first two axes), and the worked offsets of nvmath-python's
// `get_block_scale_offset` (docs.nvidia.com/cuda/nvmath-python), which layout_test.cpp checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"

namespace mx {

// Byte count of the swizzled layout of a rows x cols matrix, padding included.
int64_t swizzled_scale_bytes(int64_t rows, int64_t cols);

// Byte position of scale (row, col) in the swizzled layout of a matrix with `cols` columns.
int64_t swizzled_scale_offset(int64_t row, int64_t col, int64_t cols);

// Row-major `scales` (rows * cols bytes) -> swizzled bytes, padding zero. On a size mismatch or
// a negative dimension, an empty vector and a reason in `error`.
std::vector<uint8_t> swizzle_scales(std::span<const uint8_t> scales, int64_t rows, int64_t cols,
                                    std::string* error);

// Swizzled bytes (exactly swizzled_scale_bytes(rows, cols) of them) -> row-major scales.
// Padding bytes are ignored: producers need not zero them.
std::vector<uint8_t> unswizzle_scales(std::span<const uint8_t> bytes, int64_t rows, int64_t cols,
                                      std::string* error);

// The scale matrix of a symmetric MxTensor with 1-D blocks along its last axis: rows = the
// product of the leading dimensions (a batch is flattened into rows), cols = blocks per row.
// Empty on success, else why the tensor has no such matrix.
std::string scale_matrix_dims(const MxTensor& t, int64_t* rows, int64_t* cols);

// `t`'s scales in the swizzled layout.
std::vector<uint8_t> swizzle_tensor_scales(const MxTensor& t, std::string* error);

// Replaces t->scales with the scales unswizzled from `bytes`; t's shape and spec give the matrix.
std::string unswizzle_tensor_scales(std::span<const uint8_t> bytes, MxTensor* t);

}  // namespace mx
