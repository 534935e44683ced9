// Tensor-core causal attention (flash_attention.h): the forward's launch and the launchers'
// common checks. The kernels: flash_forward_kernels.cuh, here over mma.sync tile products
// (MmaTiles), on Hopper over warpgroup products where sm90a/flash_forward_wgmma.cu takes them;
// the backward: flash_attention_backward.cu.
#include "mx/nn/cuda/flash_attention.h"

#include "mx/nn/cuda/flash_forward_kernels.cuh"
#include "mx/nn/cuda/flash_forward_wgmma.h"

namespace mx::nn::cuda {

using namespace flash;

bool flash_supports(const AttnDims& d, bool bf16_act, std::initializer_list<TileCast> casts) {
  if (!bf16_act || (d.hs != 32 && d.hs != 64 && d.hs != 128)) return false;
  for (const TileCast& c : casts) {
    if (c.kind == TileCast::Kind::kNone) return false;
  }
  return true;
}

bool flash_attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, const TileCast& p_cast, bool round_p,
                             cudaStream_t s, const PvForDelta& pv) {
  bool wrote_pv = false;
  if (flash_forward_wgmma(out, lse, q, k, v, d, p_cast, round_p, s, pv, &wrote_pv)) {
    return wrote_pv;
  }
  with_head_size(d.hs, [&]<int HS>() {
    wrote_pv = launch_forward<HS, MmaTiles>(out, lse, q, k, v, d, p_cast, round_p, s, pv);
  });
  return wrote_pv;
}

}  // namespace mx::nn::cuda
