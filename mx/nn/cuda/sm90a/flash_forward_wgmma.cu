// The online-softmax forward (P cast to bfloat16 only) on Hopper's warpgroup products: the same
// tiles, softmax and results as flash_attention.cu's forward_online_kernel, whose four warps each
// read every key and value tile from shared memory through ldmatrix for their own 16 rows. Here
// the block is one warpgroup, and each product reads its shared-memory operand once for all 64
// rows: S = Q K^T with both operands K-major tiles, O += P V with P in registers (the mma.sync A
// fragments that the m16n8 accumulators of S convert to) and V read transposed (MN-major).
// Tiles are 128-byte swizzled (mx/kernels/cuda/wgmma.cuh), 64 columns to a slice.
#include "mx/nn/cuda/flash_forward_wgmma.h"

#include "mx/nn/cuda/sm90a/wgmma_tiles.cuh"

namespace mx::nn::cuda {
namespace {

using namespace flash;
using namespace flash::sm90a;

template <int HS>
__global__ void __launch_bounds__(kThreadsTc)
    forward_online_wgmma_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                Geo g) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = align_1024(smem_raw);
  unsigned char* qs = smem;
  auto ks = [&](int i) { return smem + (1 + 2 * i) * kSwizzledTileBytes<HS>; };
  auto vs = [&](int i) { return smem + (2 + 2 * i) * kSwizzledTileBytes<HS>; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  load_swizzled<HS>(qs, q + (b * g.t * g.nh + h) * HS, q_stride, q0, g.t);
  load_swizzled<HS>(ks(0), kb, kv_stride, 0, g.t);
  load_swizzled<HS>(vs(0), vb, kv_stride, 0, g.t);
  cp_async_commit();

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[HS / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = kt & 1;
    if (kt < qt) {
      load_swizzled<HS>(ks(buf ^ 1), kb, kv_stride, k0 + kTile, g.t);
      load_swizzled<HS>(vs(buf ^ 1), vb, kv_stride, k0 + kTile, g.t);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    tiles_ready();

    float s[8][4] = {};
    wg::fence();
    issue_abt<HS, 8>(s, qs, ks(buf));
    finish(s);

    if (kt == qt) mask_above_diagonal(s);
    online_softmax_step(s, m, l, g.scale_log2, [&](int rr, float correction) {
#pragma unroll
      for (int d = 0; d < HS / 8; ++d) {
        o[d][2 * rr] *= correction;
        o[d][2 * rr + 1] *= correction;
      }
    });
    uint32_t pa[4][4];
    pack_a(pa, s);
    wg::fence();
    issue_ab<HS, 8>(o, pa, vs(buf));
    finish(o);
    __syncthreads();  // before the next tile's copies overwrite this buffer
  }
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    const float inv = 1.0f / l[rr];
#pragma unroll
    for (int d = 0; d < HS / 8; ++d) {
      o[d][2 * rr] *= inv;
      o[d][2 * rr + 1] *= inv;
    }
  }
  store_rows<HS>(out + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, o);
  if ((lane & 3) == 0) {
    for (int rr = 0; rr < 2; ++rr) {
      if (row[rr] < g.t) lse[bh * g.t + row[rr]] = row_lse2_of(m[rr], l[rr], g.scale_log2) * kLn2;
    }
  }
}

}  // namespace

bool flash_forward_online_wgmma(void* out, float* lse, const void* q, const void* k, const void* v,
                                const AttnDims& d, cudaStream_t s) {
  if ((d.hs != 64 && d.hs != 128) || !on_compute_capability_90()) return false;
  const Geo g = geo(d);
  const dim3 grid(unsigned((d.t + kTile - 1) / kTile), unsigned(d.b * d.nh));
  with_head_size(d.hs, [&]<int HS>() {
    if constexpr (HS == 64 || HS == 128) {
      const size_t shared = 5 * kSwizzledTileBytes<HS> + 1024;  // and room to align
      allow_shared(forward_online_wgmma_kernel<HS>, shared);
      forward_online_wgmma_kernel<HS><<<grid, kThreadsTc, shared, s>>>(
          static_cast<bf16*>(out), lse, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
          static_cast<const bf16*>(v), g);
    }
  });
  return true;
}

}  // namespace mx::nn::cuda
