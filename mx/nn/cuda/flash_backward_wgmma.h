// The tensor-core backward without MX casts of P and dS, delta given (flash_backward_kernels.cuh's
// dQ and dK/dV kernels), on Hopper's warpgroup products, built for sm_90a alone
// (sm90a/flash_backward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches dQ and dK/dV without MX casts (a.delta already holding delta) at head sizes 64 and
// 128 on a GPU of compute capability 9.0 and returns true; elsewhere launches nothing and
// returns false. Under MX casts the mma.sync kernels stay (sm90a/flash_backward_wgmma.cu says why).
bool flash_backward_wgmma(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                          const TileCast& ds_x, const TileCast& ds_w, bool round_p, cudaStream_t s);

}  // namespace mx::nn::cuda
