// The dual quantize kernels of quantize_dual_cuda (dual_kernels.cu); the packed bfloat16 MXFP4
// kernel is dual_bf16_e2m1.cuh. Each launch enqueues on `stream` without synchronising; the caller
// checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// The tiles of [M, K] that one CTA reads: the grid is K / cols x M / rows, rounded up.
constexpr int kDualRows = 32, kDualCols = 64;  // dual_kernel
constexpr int kDualVecCols = 128;              // dual_vec_kernel, 32 rows

// dual_kernel: any code width, any alignment.
void launch_dual(const DualParams& P, Rounding mode, bool integer, dim3 grid, cudaStream_t stream);

// dual_vec_kernel: codes of `code_bits` = 4, 6 or 8, 16-byte aligned code buffers; `vec_loads` when
// the input is 16-byte aligned and its rows are whole 16-byte vectors.
void launch_dual_vec(const DualParams& P, Rounding mode, bool integer, int code_bits, dim3 grid,
                     int vec_loads, cudaStream_t stream);

}  // namespace mx::cuda
