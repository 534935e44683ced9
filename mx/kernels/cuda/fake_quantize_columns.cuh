// Fake-quantize of blocks of 32 along an axis other than the last (fake_quantize_columns.cu).
// Each launch enqueues on `stream` without synchronising; the caller checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/quantize_cuda.h"

namespace mx::cuda {

// fake_columns_kernel: tiles 32 x 1 over [outer, rows, cols], one thread per block.
void launch_fake_columns(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream);

// fake_columns_batch_kernel: fake_columns_kernel over `count` float32 matrices (device memory,
// first_block filled in) to bfloat16, in one launch.
void launch_fake_columns_batch(const DevSpec& s, const ColumnCastMatrix* matrices, int count,
                               int64_t total_blocks, Rounding mode, bool integer,
                               cudaStream_t stream);

// fake_column_tiles_kernel: the same for 16-bit input and bfloat16 output, through tiles of
// 32 x 256 in shared memory (coalesced loads and stores); where fake_column_tiles_apply(P).
bool fake_column_tiles_apply(const QuantParams& P);
void launch_fake_column_tiles(const QuantParams& P, Rounding mode, bool integer,
                              cudaStream_t stream);

}  // namespace mx::cuda
