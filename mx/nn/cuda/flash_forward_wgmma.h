// The tensor-core forward (flash_forward_kernels.cuh) on Hopper's warpgroup products, built for
// sm_90a alone (sm90a/flash_forward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches the forward without an MX cast of P at head sizes 64 and 128 on a GPU of compute
// capability 9.0, sets *wrote_pv as flash_attention_forward's result, and returns true;
// elsewhere launches nothing and returns false.
bool flash_forward_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                         const AttnDims& d, const TileCast& p_cast, bool round_p, cudaStream_t s,
                         const PvForDelta& pv, bool* wrote_pv);

}  // namespace mx::nn::cuda
