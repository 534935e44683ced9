// The tensor-core forward without an MX cast of P (flash_attention.cu's online kernel) on
// Hopper's warpgroup products, built for sm_90a alone (sm90a/flash_forward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches the forward for head sizes 64 and 128 on a GPU of compute capability 9.0 and
// returns true; elsewhere launches nothing and returns false. Results as the online kernel's:
// out and lse, P rounded to bfloat16 for its product.
bool flash_forward_online_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                                const AttnDims& d, cudaStream_t s);

}  // namespace mx::nn::cuda
