// The Hopper MX x MX products through bfloat16 tensor cores: the staged kernel (gemm_mx_bf16.cu)
// and the warp-specialized one (gemm_mx_bf16_ws.cu). Arguments are checked by mx_gemm_cuda and
// mx_gemm_specialized_cuda (mx_gemm.h), which call these on compute capability 9.0 devices.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

std::string launch_mx_gemm_bf16_hopper(const MxGemmArgs& args, cudaStream_t stream);
std::string launch_mx_gemm_bf16_ws_hopper(const MxGemmArgs& args, cudaStream_t stream);

}  // namespace mx::cuda
