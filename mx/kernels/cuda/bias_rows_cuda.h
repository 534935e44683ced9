// Adds a bias vector to every row of a float32 matrix on the GPU: the epilogue of the MX
// products whose library epilogue would round the bias (gemm_cublaslt_mx.cpp).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "mx/core/dtype.h"

namespace mx::cuda {

// out[i, j] = round(in[i, j] + bias[j]) for the m x n row-major float32 `in`, one float32
// addition per value, rounded to `out_dtype` (float32, or bfloat16 to nearest even). `out` may
// be `in` for float32. Enqueued on `stream`; a non-empty result is a one-line reason.
std::string add_bias_rows_cuda(const float* in, const float* bias, int64_t m, int64_t n,
                               DType out_dtype, void* out, cudaStream_t stream);

}  // namespace mx::cuda
