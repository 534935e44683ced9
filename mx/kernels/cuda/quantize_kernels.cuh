// The quantize and fake-quantize kernels of quantize_cuda and fake_quantize_cuda
// (quantize_kernels.cu). Each launch enqueues on `stream` without synchronising; the caller
// checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// quantize_kernel: any grid, one thread per group of P.group blocks.
void launch_quantize(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream);

// quantize_lanes_kernel: contiguous runs of blocks with k = 8 * 2^log2g, 2^log2g <= 32.
void launch_quantize_lanes(const QuantParams& P, Rounding mode, bool integer, int log2g,
                           cudaStream_t stream);

// quantize_vec_kernel: blocks that tile the tensor in order with k = 32 * 2^log2g, 16-byte
// aligned buffers, codes of `code_bits` = 4, 6 or 8 (fake-quantize takes 8 for every format).
void launch_quantize_vec(const QuantParams& P, Rounding mode, bool integer, int code_bits,
                         int log2g, cudaStream_t stream);

// quantize_vec_bf16_stochastic_kernel: the blocks of quantize_vec for stochastic rounding of
// bfloat16 to 4-bit codes without an offset or subnormal flushing.
void launch_quantize_vec_bf16_stochastic(const QuantParams& P, bool integer, int log2g,
                                         cudaStream_t stream);

}  // namespace mx::cuda
