// Causal attention on tensor cores (flash_attention.cu, flash_attention_backward.cu), for
// bfloat16 activations and head sizes 32, 64 and 128: tiles of 64 queries by 64 keys
// (flash_tiles.cuh), products by mma.sync in bfloat16 with float32 accumulation, P and dS cast
// in registers (tile_cast.cuh), nothing of size T x T in memory. The same arguments and results
// as the CUDA-core kernels of attention.cu, which stay for float32 activations and the casts
// these cannot feed to a bfloat16 product exactly. On compute capability 9.0 the launchers hand
// head sizes 64 and 128 to the same kernels on warpgroup products (flash_forward_wgmma.h,
// flash_backward_wgmma.h) where those apply.
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// True when the tensor-core kernels compute this attention: bfloat16 activations, a head size
// of 32, 64 or 128, and every in-tile cast to bfloat16 or MX. Bfloat16 and symmetric MX values
// are exact in bfloat16, so the bfloat16 product loses nothing the cast kept; an asymmetric
// cast's values (plus a bfloat16 offset) are rounded to bfloat16 once more (docs/NUMERICS.md).
bool flash_supports(const AttnDims& d, bool bf16_act, std::initializer_list<TileCast> casts);

// Writes pv.pv (when given) under an MX cast of P, and says whether it did.
bool flash_attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, const TileCast& p_cast, bool round_p,
                             cudaStream_t s, const PvForDelta& pv = {});

void flash_attention_backward(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                              const TileCast& ds_x, const TileCast& ds_w, bool round_p,
                              cudaStream_t s);

}  // namespace mx::nn::cuda
