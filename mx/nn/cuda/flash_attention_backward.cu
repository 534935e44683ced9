// Tensor-core causal attention (flash_attention.h): the backward's launch. delta comes from the
// forward (its P v_dw, or its output without MX casts) through delta_kernel, else dQ's kernel
// sums it in a first sweep; then dQ and dK/dV (flash_backward_kernels.cuh), over mma.sync tile
// products (MmaTiles), on Hopper over warpgroup products where sm90a/flash_backward_wgmma.cu
// takes them.
#include "mx/nn/cuda/flash_attention.h"

#include "mx/nn/cuda/flash_backward_kernels.cuh"
#include "mx/nn/cuda/flash_backward_wgmma.h"

namespace mx::nn::cuda {
namespace {

using namespace flash;

// ---- delta = rowsum(dO * X), X the forward's P v_dw, or O without MX casts ----
//
// Equal to rowsum(P * dP) up to bfloat16 rounding (X = P V and dP = dO V^T), and one pass over
// two [B, T, nh, hs] tensors instead of a second sweep over the keys. HS / 8 neighbouring
// threads share a (b, i, h) row, a 16-byte vector of each tensor apiece, so that a warp's loads
// are whole runs of memory; their sums meet in a fixed shuffle tree.
template <int HS>
constexpr int kDeltaLanes = HS / 8;

template <int HS>
__global__ void __launch_bounds__(256)
    delta_kernel(float* delta, const bf16* dout, const bf16* out, int64_t rows, Geo g) {
  constexpr int kLanes = kDeltaLanes<HS>;
  static_assert(32 % kLanes == 0);
  const int64_t thread = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t r = thread / kLanes;
  const int part = int(thread % kLanes);
  float sum = 0.0f;
  if (r < rows) {
    const uint4 a = reinterpret_cast<const uint4*>(dout + r * HS)[part];
    const uint4 b = reinterpret_cast<const uint4*>(out + r * HS)[part];
    const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      sum += __uint_as_float(aw[w] << 16) * __uint_as_float(bw[w] << 16);
      sum += __uint_as_float(aw[w] & 0xFFFF0000u) * __uint_as_float(bw[w] & 0xFFFF0000u);
    }
  }
#pragma unroll
  for (int offset = kLanes / 2; offset > 0; offset /= 2) {
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, offset);
  }
  if (r >= rows || part != 0) return;
  const int64_t h = r % g.nh, bi = r / g.nh;
  delta[((bi / g.t) * g.nh + h) * g.t + bi % g.t] = sum;
}

}  // namespace

int64_t attention_column_sum_rows(const AttnDims& d) {
  return d.b * ((d.t + flash::kTile - 1) / flash::kTile);
}

void flash_attention_backward(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                              const TileCast& ds_x, const TileCast& ds_w, bool round_p,
                              cudaStream_t s) {
  const Geo g = geo(d);
  // delta from the forward's P v_dw, or without MX casts of P or dS from O (delta_kernel), rather
  // than a sweep.
  const bool no_mx = p_dw.kind != TileCast::Kind::kMx && ds_x.kind != TileCast::Kind::kMx &&
                     ds_w.kind != TileCast::Kind::kMx;
  const void* delta_source = a.pv != nullptr ? a.pv : no_mx ? a.out : nullptr;
  with_head_size(d.hs, [&]<int HS>() {
    if (delta_source != nullptr) {
      const int64_t rows = d.b * d.t * d.nh, threads = rows * kDeltaLanes<HS>;
      delta_kernel<HS><<<unsigned((threads + 255) / 256), 256, 0, s>>>(
          a.delta, static_cast<const bf16*>(a.do_x), static_cast<const bf16*>(delta_source), rows,
          g);
      if (flash_backward_wgmma(a, d, p_dw, ds_x, ds_w, round_p, s)) return;
    }
    launch_dq_dkdv<HS, 4, true, MmaTiles>(a, d, p_dw, ds_x, ds_w, round_p, delta_source != nullptr,
                                          s);
  });
}

}  // namespace mx::nn::cuda
