// Causal attention in float32 on CUDA cores, tiled (fp32_attention.cu): for float32 activations
// (the fp32 and tf32 recipes) with head size 64 and no cast of P or dS. Tiles of 64 queries by
// 64 keys in shared memory, 4 x 4 outputs per thread, an online softmax in the forward, and in
// the backward one kernel for dQ (over key tiles) and one for dK and dV (over query tiles), with
// delta = rowsum(dO * O). Every sum runs in a fixed order, so results repeat bit for bit. The
// same arguments and results as the warp-per-row kernels of attention.cu, which stay for other
// head sizes, casts of P and dS, and a key/value cache.
#pragma once

#include <cuda_runtime_api.h>

#include "mx/nn/cuda/attention.h"

namespace mx::nn::cuda {

// True when these kernels compute this attention: head size 64, no cache, no rounding or cast
// of P and dS, and (for the backward) the forward's output at hand.
bool fp32_attention_supports(const AttnDims& d, std::initializer_list<TileCast> casts,
                             bool round_p);

void fp32_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                            const AttnDims& d, cudaStream_t s);

// Needs a.out (delta = rowsum(dO * O)).
void fp32_attention_backward(const AttnBackwardArgs& a, const AttnDims& d, cudaStream_t s);

}  // namespace mx::nn::cuda
