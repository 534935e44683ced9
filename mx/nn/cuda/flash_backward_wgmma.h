// The tensor-core backward without MX casts of P and dS (flash_attention_backward.cu's dQ and
// dK/dV kernels, delta given) on Hopper's warpgroup products, built for sm_90a alone
// (sm90a/flash_backward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches dQ and dK/dV without MX casts (a.delta already holding delta) at head sizes 64 and
// 128 on a GPU of compute capability 9.0 and returns true; elsewhere launches nothing and
// returns false. Under MX casts the mma.sync kernels stay: with the MX kernels on warpgroup
// products too, a GPT-2 124M step under mxfp6 took 0.5 ms longer (docs/PERFORMANCE.md).
bool flash_backward_wgmma(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                          const TileCast& ds_x, const TileCast& ds_w, bool round_p, cudaStream_t s);

}  // namespace mx::nn::cuda
