// Fake-quantize of a bfloat16 matrix along its rows and down its columns in one read
// (fake_quantize_dual.cu). The launch enqueues on `stream` without synchronising; the caller
// checks it.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// Whether the tile kernel takes R (blocks of 32 along the rows of a 2-D bfloat16 matrix, into
// bfloat16) and C (blocks of 32 down its columns, likewise) of the same input. The launch casts
// the first real_cols columns as the matrix [rows, real_cols] they form (stochastic draws by
// its flat indices) and writes zeros past them, where the input holds zeros.
bool fake_dual_tiles_apply(const QuantParams& R, const QuantParams& C);
// With column_sums ([tiles down, cols] floats), each 32-row tile's column sums of the input.
void launch_fake_dual_tiles(const QuantParams& R, const QuantParams& C, int64_t real_cols,
                            Rounding mode, bool integer, cudaStream_t stream,
                            float* column_sums = nullptr);

}  // namespace mx::cuda
