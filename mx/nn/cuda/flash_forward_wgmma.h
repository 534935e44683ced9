// The tensor-core forward (flash_attention.cu's kernels) on Hopper's warpgroup products, built
// for sm_90a alone (sm90a/flash_forward_wgmma.cu).
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// Launches the forward for head sizes 64 and 128 on a GPU of compute capability 9.0 and
// returns true; elsewhere launches nothing and returns false. Results as the online kernel's:
// out and lse, P rounded to bfloat16 for its product.
bool flash_forward_online_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                                const AttnDims& d, cudaStream_t s);

// The forward under an MX cast of P (flash_attention.cu's two-sweep forward_kernel, with P v_dw
// written when pv is given) on the same terms; a p_cast of kind kMx only.
bool flash_forward_mx_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                            const AttnDims& d, const TileCast& p_cast, bool round_p, cudaStream_t s,
                            const PvForDelta& pv);

}  // namespace mx::nn::cuda
