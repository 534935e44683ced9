// Fake-quantize of blocks of 32 along an axis other than the last (fake_quantize_columns.cu).
// Each launch enqueues on `stream` without synchronising; the caller checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// fake_columns_kernel: tiles 32 x 1 over [outer, rows, cols], one thread per block.
void launch_fake_columns(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream);

// fake_column_tiles_kernel: the same for 16-bit input and bfloat16 output, through tiles of
// 32 x 256 in shared memory (coalesced loads and stores); where fake_column_tiles_apply(P).
bool fake_column_tiles_apply(const QuantParams& P);
void launch_fake_column_tiles(const QuantParams& P, Rounding mode, bool integer,
                              cudaStream_t stream);

}  // namespace mx::cuda
