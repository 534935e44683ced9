// The Hopper MX x MX product through bfloat16 tensor cores (gemm_mx_bf16.cu). Arguments are
// checked by mx_gemm_cuda (mx_gemm.h), which calls it on compute capability 9.0 devices.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

std::string launch_mx_gemm_bf16_hopper(const MxGemmArgs& args, cudaStream_t stream);

}  // namespace mx::cuda
