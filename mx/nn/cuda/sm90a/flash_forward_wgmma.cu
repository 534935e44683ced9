// The forward kernel without MX casts (flash_forward_kernels.cuh) over Hopper's warpgroup
// products (WgmmaTiles): each product reads its shared-memory operand once for the block's 64
// rows, where the mma.sync build has each warp read it for its own 16.
#include "mx/nn/cuda/flash_forward_wgmma.h"

#include "mx/nn/cuda/flash_forward_kernels.cuh"
#include "mx/nn/cuda/sm90a/wgmma_tiles.cuh"

namespace mx::nn::cuda {

bool flash_forward_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                         const AttnDims& d, const TileCast& p_cast, bool round_p, cudaStream_t s,
                         const PvForDelta& pv, bool* wrote_pv) {
  using namespace flash;
  // Under an MX cast of P the two-sweep kernel stays on mma.sync: on wgmma it measured no faster
  // at head size 64, and a GPT-2 124M step under mxfp6 took 0.5 ms longer with it.
  if (p_cast.kind == TileCast::Kind::kMx || (d.hs != 64 && d.hs != 128) ||
      !sm90a::on_compute_capability_90()) {
    return false;
  }
  with_head_size(d.hs, [&]<int HS>() {
    if constexpr (HS == 64 || HS == 128) {
      *wrote_pv =
          launch_forward<HS, sm90a::WgmmaTiles>(out, lse, q, k, v, d, p_cast, round_p, s, pv);
    }
  });
  return true;
}

}  // namespace mx::nn::cuda
