// The dequantize kernels of dequantize_cuda (dequantize_kernels.cu). Each launch enqueues on
// `stream` without synchronising; the caller checks the launch and that its grid fits.
#pragma once

#include <cuda_runtime.h>

#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// dequantize_vec_kernel: blocks that tile the tensor in order with k = 32 * 2^log2g, codes of
// `code_bits` = 4, 6 or 8, 16-byte aligned buffers.
void launch_dequantize_vec(const DequantParams& P, int code_bits, int log2g, cudaStream_t stream);

// dequantize_chunks_kernel: contiguous blocks with k % 8 == 0, one thread per 8 codes.
void launch_dequantize_chunks(const DequantParams& P, cudaStream_t stream);

// dequantize_kernel: any grid, one thread per block.
void launch_dequantize(const DequantParams& P, cudaStream_t stream);

}  // namespace mx::cuda
