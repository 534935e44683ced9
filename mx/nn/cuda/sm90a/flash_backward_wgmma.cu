// The backward without MX casts of P and dS (flash_attention_backward.cu's dq_kernel with delta
// given and dkdv_kernel with QuadEncoder::kNoMx) on Hopper's warpgroup products: the same sweeps,
// orders of summation over tiles, masks and roundings, with each product's shared-memory operand
// read once for the block's 64 rows (wgmma_tiles.cuh) instead of once per warp.
//
// dQ: rows are queries. S = Q K^T and dP = dO V^T (K-major B), dQ += dS K (K read MN-major).
// dK/dV: rows are keys. S^T = K Q^T and dP^T = V dO^T, dV += P^T dO and dK += dS^T Q (dO and Q
// read MN-major). Both take the other side's tile 64 (head size 64) or 32 (128, where the
// accumulators of dK and dV take twice the registers) columns at a time. The kernels keep the
// mma.sync kernels' casts and operand tiles for other tensors, but are launched only without MX
// casts (flash_backward_wgmma.h says why), where those compile to nothing.
#include "mx/nn/cuda/flash_backward_wgmma.h"

#include "mx/nn/cuda/sm90a/wgmma_tiles.cuh"

namespace mx::nn::cuda {
namespace {

using namespace flash;
using namespace flash::sm90a;

// Columns of the other side's tile per step: N n-tiles of 8.
template <int HS>
constexpr int kStepTiles = HS == 64 ? 8 : 4;

// q, k, v and dout as P's and dP's products read them; k_dw, do_w and q_dw as dQ's, dV's and
// dK's products read them (the same pointers where no MX cast makes them other tensors).
struct Args {
  const bf16 *q, *k, *v, *dout, *k_dw, *do_w, *q_dw;
  const float *lse, *delta;
  bf16 *dq, *dk, *dv;
  bool round_p;
};

// ---- dQ: one block per (query tile, batch, head) ----
//
// Shared memory: the Q and dO tiles, then two buffers of K, V and (where dQ's product reads
// another tensor than P's) K as cast for dQ. dS is cast along keys (ds_x).
template <int HS, int N, QuadEncoder kEncDs>
__global__ void __launch_bounds__(kThreadsTc) dq_wgmma_kernel(Args a, Geo g, DevCast ds_x) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = align_1024(smem_raw);
  const bool k_same = a.k_dw == a.k;
  const int per_buffer = (k_same ? 2 : 3) * kSwizzledTileBytes<HS>;
  unsigned char* qs = smem;
  unsigned char* dos = smem + kSwizzledTileBytes<HS>;
  auto ks = [&](int i) { return smem + 2 * kSwizzledTileBytes<HS> + i * per_buffer; };
  auto vs = [&](int i) { return ks(i) + kSwizzledTileBytes<HS>; };
  auto kds = [&](int i) { return k_same ? ks(i) : ks(i) + 2 * kSwizzledTileBytes<HS>; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t q_off = (b * g.t * g.nh + h) * HS, kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  float row_lse2[2], delta[2];
  for (int rr = 0; rr < 2; ++rr) {
    row_lse2[rr] = row[rr] < g.t ? a.lse[bh * g.t + row[rr]] * kLog2e : 0.0f;
    delta[rr] = row[rr] < g.t ? a.delta[bh * g.t + row[rr]] : 0.0f;
  }
  load_swizzled<HS>(qs, a.q + q_off, q_stride, q0, g.t);
  load_swizzled<HS>(dos, a.dout + q_off, q_stride, q0, g.t);
  auto load_keys = [&](int64_t k0, int buf) {
    load_swizzled<HS>(ks(buf), a.k + kv_off, kv_stride, k0, g.t);
    load_swizzled<HS>(vs(buf), a.v + kv_off, kv_stride, k0, g.t);
    if (!k_same) load_swizzled<HS>(kds(buf), a.k_dw + kv_off, kv_stride, k0, g.t);
    cp_async_commit();
  };
  float dq[HS / 8][4] = {};
  load_keys(0, 0);
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = kt & 1;
    if (kt < qt) {
      load_keys(k0 + kTile, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    tiles_ready();
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 8 * N) {
      float p[N][4] = {}, dp[N][4] = {};
      wg::fence();
      issue_abt<HS, N>(p, qs, ks(buf), c0);
      issue_abt<HS, N>(dp, dos, vs(buf), c0);
      finish(p, dp);
      probabilities_from_lse(p, row_lse2, g.scale_log2, kt == qt, a.round_p, c0);
#pragma unroll
      for (int n = 0; n < N; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) p[n][e] = p[n][e] * (dp[n][e] - delta[e >> 1]) * g.scale;
      }
      cast_tile<kEncDs, N>(ds_x, p, k0 + c0, g.t, row, bh * g.t * g.t, g.t, 1);
      mask_after_asymmetric_cast<false, N>(ds_x, p, kt == qt, c0);
      uint32_t dsa[N / 2][4];
      pack_a(dsa, p);
      wg::fence();
      issue_ab<HS, N>(dq, dsa, kds(buf), c0);
      finish(dq);
    }
    __syncthreads();  // before the next tile's copies overwrite this buffer
  }
  store_rows<HS>(a.dq + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, dq);
}

// ---- dK and dV: one block per (key tile, batch, kv head) ----
//
// Shared memory: the K and V tiles, two buffers of Q, dO, and dO and Q as cast for dV's and
// dK's products where those are other tensors, then each buffer's rows' lse and delta. The sweep
// runs over (query head of the group, query tile) in order. P and dS are cast along queries
// (p_dw, ds_w).
template <int HS, int N, QuadEncoder kEncP, QuadEncoder kEncDs>
__global__ void __launch_bounds__(kThreadsTc)
    dkdv_wgmma_kernel(Args a, Geo g, DevCast p_dw, DevCast ds_w) {
  extern __shared__ __align__(1024) unsigned char smem_raw[];
  unsigned char* smem = align_1024(smem_raw);
  const bool do_same = a.do_w == a.dout, q_same = a.q_dw == a.q;
  const int extra = (do_same ? 0 : 1) + (q_same ? 0 : 1);
  const int per_buffer = (2 + extra) * kSwizzledTileBytes<HS>;
  unsigned char* ks = smem;
  unsigned char* vs = smem + kSwizzledTileBytes<HS>;
  auto qs = [&](int i) { return smem + 2 * kSwizzledTileBytes<HS> + i * per_buffer; };
  auto dos = [&](int i) { return qs(i) + kSwizzledTileBytes<HS>; };
  auto dows = [&](int i) { return do_same ? dos(i) : dos(i) + kSwizzledTileBytes<HS>; };
  auto qdws = [&](int i) { return q_same ? qs(i) : qs(i) + (1 + extra) * kSwizzledTileBytes<HS>; };
  float* lse_s = reinterpret_cast<float*>(qs(2));  // [2][kTile]
  float* delta_s = lse_s + 2 * kTile;
  const int kt = int(blockIdx.x);  // the longest columns first
  const int per_head = int(gridDim.x) - kt, total = int(g.group) * per_head;
  const int64_t bk = blockIdx.y, b = bk / g.nkv, kvh = bk % g.nkv;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t k0 = int64_t(kt) * kTile;
  const int64_t key[2] = {k0 + warp * 16 + (lane >> 2), k0 + warp * 16 + (lane >> 2) + 8};
  load_swizzled<HS>(ks, a.k + kv_off, kv_stride, k0, g.t);
  load_swizzled<HS>(vs, a.v + kv_off, kv_stride, k0, g.t);
  // Step `it` of the sweep: query head kvh * group + it / per_head, query tile kt + it % per_head.
  auto head_of = [&](int it) { return kvh * g.group + it / per_head; };
  auto first_query = [&](int it) { return int64_t(kt + it % per_head) * kTile; };
  auto load_queries = [&](int it, int buf) {
    const int64_t h = head_of(it), q0 = first_query(it);
    const int64_t bh = b * g.nh + h, q_off = (b * g.t * g.nh + h) * HS;
    load_swizzled<HS>(qs(buf), a.q + q_off, q_stride, q0, g.t);
    load_swizzled<HS>(dos(buf), a.dout + q_off, q_stride, q0, g.t);
    if (!do_same) load_swizzled<HS>(dows(buf), a.do_w + q_off, q_stride, q0, g.t);
    if (!q_same) load_swizzled<HS>(qdws(buf), a.q_dw + q_off, q_stride, q0, g.t);
    if (threadIdx.x < kTile) {
      const int64_t i = q0 + threadIdx.x;
      lse_s[buf * kTile + threadIdx.x] = i < g.t ? a.lse[bh * g.t + i] * kLog2e : 0.0f;
      delta_s[buf * kTile + threadIdx.x] = i < g.t ? a.delta[bh * g.t + i] : 0.0f;
    }
    cp_async_commit();
  };
  float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};
  load_queries(0, 0);
  for (int it = 0; it < total; ++it) {
    const int buf = it & 1;
    if (it + 1 < total) {
      load_queries(it + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    tiles_ready();
    const int64_t bh = b * g.nh + head_of(it), q0 = first_query(it);
    const float* lse_b = lse_s + buf * kTile;
    const float* delta_b = delta_s + buf * kTile;
    const bool diagonal = q0 == k0;
    const int queries_left = q0 + kTile > g.t ? int(g.t - q0) : kTile;
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 8 * N) {
      if (c0 >= queries_left) continue;  // uniform over the block
      float p[N][4] = {}, ds[N][4] = {};
      wg::fence();
      issue_abt<HS, N>(p, ks, qs(buf), c0);
      issue_abt<HS, N>(ds, vs, dos(buf), c0);
      finish(p, ds);
      auto probabilities = [&]<bool kMasked>() {
#pragma unroll
        for (int n = 0; n < N; ++n) {
          const int c = c0 + col_of(n, 0);  // and c + 1
          const float2 lse2 = *reinterpret_cast<const float2*>(lse_b + c);
          const float2 dl = *reinterpret_cast<const float2*>(delta_b + c);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = c + (e & 1);
            float x = exp2_approx(fmaf(p[n][e], g.scale_log2, -(e & 1 ? lse2.y : lse2.x)));
            if (kMasked && ((diagonal && col < row_in_tile(e >> 1)) || col >= queries_left)) {
              x = 0.0f;
            }
            if (a.round_p) x = bf16_round(x);
            p[n][e] = x;
            ds[n][e] = x * (ds[n][e] - (e & 1 ? dl.y : dl.x)) * g.scale;
          }
        }
      };
      if (diagonal || c0 + 8 * N > queries_left) {
        probabilities.template operator()<true>();
      } else {
        probabilities.template operator()<false>();
      }
      // Both cast along queries: element (query i, key j) has flat index (bh T + i) T + j.
      cast_tile<kEncP, N>(p_dw, p, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      cast_tile<kEncDs, N>(ds_w, ds, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      mask_after_asymmetric_cast<true, N>(p_dw, p, diagonal, c0);
      mask_after_asymmetric_cast<true, N>(ds_w, ds, diagonal, c0);
      uint32_t pa[N / 2][4], dsa[N / 2][4];
      pack_a(pa, p);
      pack_a(dsa, ds);
      wg::fence();
      issue_ab<HS, N>(dv, pa, dows(buf), c0);
      issue_ab<HS, N>(dk, dsa, qdws(buf), c0);
      finish(dv, dk);
    }
    __syncthreads();  // before the next step's copies overwrite this buffer
  }
  const int64_t out_off = (b * g.t * g.nkv + kvh) * HS;
  store_rows<HS>(a.dk + out_off, kv_stride, key, g.t, dk);
  store_rows<HS>(a.dv + out_off, kv_stride, key, g.t, dv);
}

}  // namespace

bool flash_backward_wgmma(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                          const TileCast& ds_x, const TileCast& ds_w, bool round_p,
                          cudaStream_t s) {
  const bool no_mx = quad_encoder(p_dw) == QuadEncoder::kNoMx &&
                     quad_encoder(ds_x) == QuadEncoder::kNoMx &&
                     quad_encoder(ds_w) == QuadEncoder::kNoMx;
  if (!no_mx || (d.hs != 64 && d.hs != 128) || !on_compute_capability_90()) return false;
  const Geo g = geo(d);
  const Args args{static_cast<const bf16*>(a.qf),
                  static_cast<const bf16*>(a.kf),
                  static_cast<const bf16*>(a.v_dw),
                  static_cast<const bf16*>(a.do_x),
                  static_cast<const bf16*>(a.k_dw),
                  static_cast<const bf16*>(a.do_w),
                  static_cast<const bf16*>(a.q_dw),
                  a.lse,
                  a.delta,
                  static_cast<bf16*>(a.dq),
                  static_cast<bf16*>(a.dk),
                  static_cast<bf16*>(a.dv),
                  round_p};
  const DevCast c_ds_x = dev_cast(ds_x), c_p_dw = dev_cast(p_dw), c_ds_w = dev_cast(ds_w);
  const unsigned tiles = unsigned((d.t + kTile - 1) / kTile);
  const int k_tiles = a.k_dw == a.kf ? 0 : 1;
  const int q_tiles = (a.do_w == a.do_x ? 0 : 1) + (a.q_dw == a.qf ? 0 : 1);
  with_head_size(d.hs, [&]<int HS>() {
    if constexpr (HS == 64 || HS == 128) {
      constexpr int N = kStepTiles<HS>;
      constexpr QuadEncoder kNo = QuadEncoder::kNoMx;
      const size_t dq_shared = size_t(2 + 2 * (2 + k_tiles)) * kSwizzledTileBytes<HS> + 1024;
      allow_shared(dq_wgmma_kernel<HS, N, kNo>, dq_shared);
      dq_wgmma_kernel<HS, N, kNo>
          <<<dim3(tiles, unsigned(d.b * d.nh)), kThreadsTc, dq_shared, s>>>(args, g, c_ds_x);
      const size_t dkdv_shared =
          size_t(2 + 2 * (2 + q_tiles)) * kSwizzledTileBytes<HS> + 4 * kTile * sizeof(float) + 1024;
      allow_shared(dkdv_wgmma_kernel<HS, N, kNo, kNo>, dkdv_shared);
      dkdv_wgmma_kernel<HS, N, kNo, kNo>
          <<<dim3(tiles, unsigned(d.b * d.nkv)), kThreadsTc, dkdv_shared, s>>>(args, g, c_p_dw,
                                                                               c_ds_w);
    }
  });
  return true;
}

}  // namespace mx::nn::cuda
