// The backward kernels without MX casts (flash_backward_kernels.cuh) over Hopper's warpgroup
// products (WgmmaTiles), a step taking 64 columns at head size 64 and 32 at 128 (where dK's and
// dV's accumulators take twice the registers). Under MX casts the backward stays on mma.sync:
// on wgmma it was 6% faster alone at head size 64, but a GPT-2 124M step under mxfp6 took 0.5 ms
// longer with it and the MX forward (not profiled further).
#include "mx/nn/cuda/flash_backward_wgmma.h"

#include "mx/nn/cuda/flash_backward_kernels.cuh"
#include "mx/nn/cuda/sm90a/wgmma_tiles.cuh"

namespace mx::nn::cuda {
namespace {

// Columns of the other side's tile per step: N n-tiles of 8.
template <int HS>
constexpr int kStepTiles = HS == 64 ? 8 : 4;

}  // namespace

bool flash_backward_wgmma(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                          const TileCast& ds_x, const TileCast& ds_w, bool round_p,
                          cudaStream_t s) {
  using namespace flash;
  using sm90a::WgmmaTiles;
  const bool no_mx = p_dw.kind != TileCast::Kind::kMx && ds_x.kind != TileCast::Kind::kMx &&
                     ds_w.kind != TileCast::Kind::kMx;
  if (!no_mx || (d.hs != 64 && d.hs != 128) || !sm90a::on_compute_capability_90()) return false;
  with_head_size(d.hs, [&]<int HS>() {
    if constexpr (HS == 64 || HS == 128) {
      launch_dq_dkdv<HS, kStepTiles<HS>, false, WgmmaTiles>(a, d, p_dw, ds_x, ds_w, round_p, true,
                                                            s);
    }
  });
  return true;
}

}  // namespace mx::nn::cuda
