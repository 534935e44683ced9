// The Hopper MXFP8 x MXFP8 product through FP8 mma.sync (gemm_mxfp8_fp8.cu). Arguments are
// checked by mx_gemm_fp8_cuda (mx_gemm.h), which calls this on compute capability 9.0 devices.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

std::string launch_mxfp8_gemm_fp8_hopper(const MxGemmArgs& args, cudaStream_t stream);

}  // namespace mx::cuda
