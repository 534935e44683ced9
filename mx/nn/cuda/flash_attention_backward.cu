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
// two [B, T, nh, hs] tensors instead of a second sweep over the keys. One thread per (b, i, h).
template <int HS>
__global__ void __launch_bounds__(256)
    delta_kernel(float* delta, const bf16* dout, const bf16* out, int64_t rows, Geo g) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const uint4* x = reinterpret_cast<const uint4*>(dout + r * HS);
  const uint4* y = reinterpret_cast<const uint4*>(out + r * HS);
  float sum = 0.0f;
#pragma unroll
  for (int c = 0; c < HS / 8; ++c) {
    const uint4 a = x[c], b = y[c];
    const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      sum += __uint_as_float(aw[w] << 16) * __uint_as_float(bw[w] << 16);
      sum += __uint_as_float(aw[w] & 0xFFFF0000u) * __uint_as_float(bw[w] & 0xFFFF0000u);
    }
  }
  const int64_t h = r % g.nh, bi = r / g.nh;
  delta[((bi / g.t) * g.nh + h) * g.t + bi % g.t] = sum;
}

}  // namespace

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
      const int64_t rows = d.b * d.t * d.nh;
      delta_kernel<HS><<<unsigned((rows + 255) / 256), 256, 0, s>>>(
          a.delta, static_cast<const bf16*>(a.do_x), static_cast<const bf16*>(delta_source), rows,
          g);
      if (flash_backward_wgmma(a, d, p_dw, ds_x, ds_w, round_p, s)) return;
    }
    launch_dq_dkdv<HS, 4, true, MmaTiles>(a, d, p_dw, ds_x, ds_w, round_p, delta_source != nullptr,
                                          s);
  });
}

}  // namespace mx::nn::cuda
