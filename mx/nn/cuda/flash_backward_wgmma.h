// The tensor-core backward with delta given (flash_attention_backward.cu's dQ and dK/dV
// kernels) on Hopper's warpgroup products, built for sm_90a alone (sm90a/flash_backward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches dQ and dK/dV on a GPU of compute capability 9.0 and returns true: without MX casts
// at head sizes 64 and 128, with the presets' MX casts (P to nearest, dS to nearest or
// stochastically rounded) at head size 64. Elsewhere launches nothing and returns false.
// a.delta must hold delta already.
bool flash_backward_wgmma(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                          const TileCast& ds_x, const TileCast& ds_w, bool round_p, cudaStream_t s);

}  // namespace mx::nn::cuda
