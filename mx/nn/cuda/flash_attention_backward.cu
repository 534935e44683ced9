// Tensor-core causal attention (flash_attention.h): the backward. dQ and dK/dV run as two
// kernels, so that every output is summed by one block in a fixed order (no atomics): dQ (one
// block per query tile; delta = rowsum(P * dP) comes from the forward's P v_dw or its output,
// else from a first sweep of this kernel), then dK and dV (one block per key tile, over the query
// heads of its group in order). The tiles and their products: flash_tiles.cuh.
#include "mx/nn/cuda/flash_attention.h"

#include "mx/nn/cuda/flash_backward_wgmma.h"
#include "mx/nn/cuda/flash_tiles.cuh"

namespace mx::nn::cuda {
namespace {

using namespace flash;

struct Ptrs {
  const bf16 *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  bf16 *dq, *dk, *dv;
};

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

// ---- dQ: one block per (query tile, batch, head) ----
//
// kDeltaGiven: delta is already in a.delta (delta_kernel), and one sweep over the keys remains.
// Shared memory: the Q and dO tiles, then two buffers of K, V and (when dQ's product reads
// another tensor than P's) K as cast for dQ.
template <int HS, bool kDeltaGiven, QuadEncoder kEncDs>
__global__ void __launch_bounds__(kThreadsTc) dq_kernel(Ptrs a, Geo g, DevCast ds_x, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const bool k_same = a.k_dw == a.kf;
  bf16* qs = reinterpret_cast<bf16*>(smem);
  bf16* dos = qs + kTileElems<HS>;
  const int per_buffer = (k_same ? 2 : 3) * kTileElems<HS>;
  auto ks = [&](int i) { return dos + kTileElems<HS> + i * per_buffer; };
  auto vs = [&](int i) { return ks(i) + kTileElems<HS>; };
  auto kds = [&](int i) { return k_same ? ks(i) : ks(i) + 2 * kTileElems<HS>; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t q_off = (b * g.t * g.nh + h) * HS, kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  float row_lse2[2];
  for (int rr = 0; rr < 2; ++rr) {
    row_lse2[rr] = row[rr] < g.t ? a.lse[bh * g.t + row[rr]] * kLog2e : 0.0f;
  }
  load_tile<HS>(qs, a.qf + q_off, q_stride, q0, g.t);
  load_tile<HS>(dos, a.do_x + q_off, q_stride, q0, g.t);
  auto load_keys = [&](int64_t k0, int buf, bool for_dq) {
    load_tile<HS>(ks(buf), a.kf + kv_off, kv_stride, k0, g.t);
    load_tile<HS>(vs(buf), a.v_dw + kv_off, kv_stride, k0, g.t);
    if (for_dq && !k_same) load_tile<HS>(kds(buf), a.k_dw + kv_off, kv_stride, k0, g.t);
    cp_async_commit();
  };
  uint32_t qf[HS / 16][4], dof[HS / 16][4];
  auto load_fragments = [&] {
    load_a<HS>(qf, qs + warp * 16 * kLd<HS>);
    load_a<HS>(dof, dos + warp * 16 * kLd<HS>);
  };

  // P and dP of 8N keys of a key tile from its key c0, P as the forward computed it (before its
  // cast).
  auto probabilities = [&]<int N>(float(&p)[N][4], float(&dp)[N][4], int kt, int buf, int c0) {
    product_abt<HS, N>(p, qf, ks(buf) + c0 * kLd<HS>);
    product_abt<HS, N>(dp, dof, vs(buf) + c0 * kLd<HS>);
    probabilities_from_lse(p, row_lse2, g.scale_log2, kt == qt, round_p, c0);
  };

  float delta[2];
  if constexpr (kDeltaGiven) {
    for (int rr = 0; rr < 2; ++rr) delta[rr] = row[rr] < g.t ? a.delta[bh * g.t + row[rr]] : 0.0f;
  } else {
    // Sweep 1: delta = rowsum(P * dP).
    float partial[2] = {0.0f, 0.0f};
    for (int kt = 0; kt <= qt; ++kt) {
      load_keys(int64_t(kt) * kTile, 0, false);
      cp_async_wait<0>();
      __syncthreads();
      if (kt == 0) load_fragments();
      float p[8][4], dp[8][4];
      probabilities(p, dp, kt, 0, 0);
      __syncthreads();
#pragma unroll
      for (int n = 0; n < 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) partial[e >> 1] += p[n][e] * dp[n][e];
      }
    }
    delta[0] = quad_sum(partial[0]);
    delta[1] = quad_sum(partial[1]);
    if ((lane & 3) == 0) {
      for (int rr = 0; rr < 2; ++rr) {
        if (row[rr] < g.t) a.delta[bh * g.t + row[rr]] = delta[rr];
      }
    }
  }

  // Sweep 2: dQ = cast(dS) K with dS = P (dP - delta) scale, cast along keys; the next key
  // tile's copies run during this one's products.
  float dq[HS / 8][4] = {};
  load_keys(0, 0, true);
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = kt & 1;
    if (kt < qt) {
      load_keys(k0 + kTile, buf ^ 1, true);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kDeltaGiven && kt == 0) load_fragments();
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 32) {
      // 32 keys (one block of the cast along keys) at a time, which halves the registers that P
      // and dP hold. On the diagonal tile, a warp whose queries all come before these keys has
      // only zeros.
      if (kt == qt && c0 >= warp * 16 + 16) continue;
      float p[4][4], dp[4][4];
      probabilities(p, dp, kt, buf, c0);
#pragma unroll
      for (int n = 0; n < 4; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) p[n][e] = p[n][e] * (dp[n][e] - delta[e >> 1]) * g.scale;
      }
      cast_tile<kEncDs>(ds_x, p, k0 + c0, g.t, row, bh * g.t * g.t, g.t, 1);
      mask_after_asymmetric_cast<false>(ds_x, p, kt == qt, c0);
      product_xb<HS, 4>(dq, p, kds(buf) + c0 * kLd<HS>);
    }
    __syncthreads();
  }
  store_rows<HS>(a.dq + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, dq);
}

// ---- dK and dV: one block per (key tile, batch, kv head) ----
//
// Shared memory: the K and V tiles, then two buffers of the query-side tiles (Q, dO, and dO and
// Q as cast for dV's and dK's products where those are other tensors) with their rows' lse and
// delta. The sweep runs over (query head of the group, query tile) in order; the next pair's
// copies run during this one's products.
template <int HS, QuadEncoder kEncP, QuadEncoder kEncDs>
__global__ void __launch_bounds__(kThreadsTc)
    dkdv_kernel(Ptrs a, Geo g, DevCast p_dw, DevCast ds_w, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const bool do_same = a.do_w == a.do_x, q_same = a.q_dw == a.qf;
  bf16* ks = reinterpret_cast<bf16*>(smem);
  bf16* vs = ks + kTileElems<HS>;
  const int extra = (do_same ? 0 : 1) + (q_same ? 0 : 1);
  const int per_buffer = (2 + extra) * kTileElems<HS>;
  auto qs = [&](int i) { return vs + kTileElems<HS> + i * per_buffer; };
  auto dos = [&](int i) { return qs(i) + kTileElems<HS>; };
  auto dows = [&](int i) { return do_same ? dos(i) : dos(i) + kTileElems<HS>; };
  auto qdws = [&](int i) { return q_same ? qs(i) : qs(i) + (1 + extra) * kTileElems<HS>; };
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
  load_tile<HS>(ks, a.kf + kv_off, kv_stride, k0, g.t);
  load_tile<HS>(vs, a.v_dw + kv_off, kv_stride, k0, g.t);
  // Step `it` of the sweep: query head kvh * group + it / per_head, query tile kt + it % per_head.
  auto head_of = [&](int it) { return kvh * g.group + it / per_head; };
  auto first_query = [&](int it) { return int64_t(kt + it % per_head) * kTile; };
  auto load_queries = [&](int it, int buf) {
    const int64_t h = head_of(it), q0 = first_query(it);
    const int64_t bh = b * g.nh + h, q_off = (b * g.t * g.nh + h) * HS;
    load_tile<HS>(qs(buf), a.qf + q_off, q_stride, q0, g.t);
    load_tile<HS>(dos(buf), a.do_x + q_off, q_stride, q0, g.t);
    if (!do_same) load_tile<HS>(dows(buf), a.do_w + q_off, q_stride, q0, g.t);
    if (!q_same) load_tile<HS>(qdws(buf), a.q_dw + q_off, q_stride, q0, g.t);
    if (threadIdx.x < kTile) {
      const int64_t i = q0 + threadIdx.x;
      lse_s[buf * kTile + threadIdx.x] = i < g.t ? a.lse[bh * g.t + i] * kLog2e : 0.0f;
      delta_s[buf * kTile + threadIdx.x] = i < g.t ? a.delta[bh * g.t + i] : 0.0f;
    }
    cp_async_commit();
  };
  const bf16* kw = ks + warp * 16 * kLd<HS>;
  const bf16* vw = vs + warp * 16 * kLd<HS>;
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
    __syncthreads();
    const int64_t bh = b * g.nh + head_of(it), q0 = first_query(it);
    const float* lse_b = lse_s + buf * kTile;
    const float* delta_b = delta_s + buf * kTile;
    // Masks: queries before their key on the diagonal tile, and queries past the end (their
    // zero rows would otherwise give P = 2^-lse2 in a block that a cast along queries scales).
    const bool diagonal = q0 == k0;
    const int queries_left = q0 + kTile > g.t ? int(g.t - q0) : kTile;
    // Transposed tiles: rows are keys, columns queries, taken 32 queries (one block of a cast
    // along queries) at a time, which halves the registers that P and dS hold.
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 32) {
      // A warp whose keys all come after this half's queries, or a half past the end: all zeros.
      if ((diagonal && c0 + 32 <= warp * 16) || c0 >= queries_left) continue;
      float p[4][4], ds[4][4];
      product_abt<HS, 4>(p, kw, qs(buf) + c0 * kLd<HS>);
      product_abt<HS, 4>(ds, vw, dos(buf) + c0 * kLd<HS>);
      // Most halves need no mask: one branch around the masked loop, not a test per value.
      auto probabilities = [&]<bool kMasked>() {
#pragma unroll
        for (int n = 0; n < 4; ++n) {
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
            if (round_p) x = bf16_round(x);
            p[n][e] = x;
            ds[n][e] = x * (ds[n][e] - (e & 1 ? dl.y : dl.x)) * g.scale;
          }
        }
      };
      if (diagonal || c0 + 32 > queries_left) {
        probabilities.template operator()<true>();
      } else {
        probabilities.template operator()<false>();
      }
      // Both cast along queries: element (query i, key j) has flat index (bh T + i) T + j.
      cast_tile<kEncP>(p_dw, p, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      cast_tile<kEncDs>(ds_w, ds, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      mask_after_asymmetric_cast<true>(p_dw, p, diagonal, c0);
      mask_after_asymmetric_cast<true>(ds_w, ds, diagonal, c0);
      product_xb<HS, 4>(dv, p, dows(buf) + c0 * kLd<HS>);
      product_xb<HS, 4>(dk, ds, qdws(buf) + c0 * kLd<HS>);
    }
    __syncthreads();
  }
  const int64_t out_off = (b * g.t * g.nkv + kvh) * HS;
  store_rows<HS>(a.dk + out_off, kv_stride, key, g.t, dk);
  store_rows<HS>(a.dv + out_off, kv_stride, key, g.t, dv);
}

}  // namespace

void flash_attention_backward(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                              const TileCast& ds_x, const TileCast& ds_w, bool round_p,
                              cudaStream_t s) {
  const Geo g = geo(d);
  const Ptrs p{static_cast<const bf16*>(a.qf),
               static_cast<const bf16*>(a.kf),
               static_cast<const bf16*>(a.do_x),
               static_cast<const bf16*>(a.v_dw),
               static_cast<const bf16*>(a.do_w),
               static_cast<const bf16*>(a.k_dw),
               static_cast<const bf16*>(a.q_dw),
               a.lse,
               a.delta,
               static_cast<bf16*>(a.dq),
               static_cast<bf16*>(a.dk),
               static_cast<bf16*>(a.dv)};
  const unsigned tiles = unsigned((d.t + kTile - 1) / kTile);
  const DevCast c_ds_x = dev_cast(ds_x), c_p_dw = dev_cast(p_dw), c_ds_w = dev_cast(ds_w);
  // delta from the forward's P v_dw, or without MX casts of P or dS from O (delta_kernel), rather
  // than a sweep.
  const bool no_mx = p_dw.kind != TileCast::Kind::kMx && ds_x.kind != TileCast::Kind::kMx &&
                     ds_w.kind != TileCast::Kind::kMx;
  const void* delta_source = a.pv != nullptr ? a.pv : no_mx ? a.out : nullptr;
  const int k_tiles = a.k_dw == a.kf ? 0 : 1;
  const int q_tiles = (a.do_w == a.do_x ? 0 : 1) + (a.q_dw == a.qf ? 0 : 1);
  with_head_size(d.hs, [&]<int HS>() {
    const size_t dq_shared = (2 + 2 * (2 + k_tiles)) * kTileElems<HS> * sizeof(bf16);
    const dim3 dq_grid(tiles, unsigned(d.b * d.nh));
    if (delta_source != nullptr) {
      const int64_t rows = d.b * d.t * d.nh;
      delta_kernel<HS><<<unsigned((rows + 255) / 256), 256, 0, s>>>(
          a.delta, p.do_x, static_cast<const bf16*>(delta_source), rows, g);
      if (flash_backward_wgmma(a, d, p_dw, ds_x, ds_w, round_p, s)) return;
      with_encoder(quad_encoder(ds_x), [&]<QuadEncoder kEnc>() {
        allow_shared(dq_kernel<HS, true, kEnc>, dq_shared);
        dq_kernel<HS, true, kEnc><<<dq_grid, kThreadsTc, dq_shared, s>>>(p, g, c_ds_x, round_p);
      });
    } else {
      allow_shared(dq_kernel<HS, false, QuadEncoder::kAny>, dq_shared);
      dq_kernel<HS, false, QuadEncoder::kAny>
          <<<dq_grid, kThreadsTc, dq_shared, s>>>(p, g, c_ds_x, round_p);
    }
    const size_t dkdv_shared =
        (2 + 2 * (2 + q_tiles)) * kTileElems<HS> * sizeof(bf16) + 4 * kTile * sizeof(float);
    auto dkdv = [&]<QuadEncoder kEncP, QuadEncoder kEncDs>() {
      allow_shared(dkdv_kernel<HS, kEncP, kEncDs>, dkdv_shared);
      dkdv_kernel<HS, kEncP, kEncDs>
          <<<dim3(tiles, unsigned(d.b * d.nkv)), kThreadsTc, dkdv_shared, s>>>(p, g, c_p_dw, c_ds_w,
                                                                               round_p);
    };
    // The presets' pairs: P to nearest, dS to nearest or stochastically rounded.
    const QuadEncoder ep = quad_encoder(p_dw), eds = quad_encoder(ds_w);
    if (ep == QuadEncoder::kNoMx && eds == QuadEncoder::kNoMx) {
      dkdv.template operator()<QuadEncoder::kNoMx, QuadEncoder::kNoMx>();
    } else if (ep == QuadEncoder::kNearestEvenFloat && eds == QuadEncoder::kNearestEvenFloat) {
      dkdv.template operator()<QuadEncoder::kNearestEvenFloat, QuadEncoder::kNearestEvenFloat>();
    } else if (ep == QuadEncoder::kNearestEvenFloat && eds == QuadEncoder::kStochasticFloat) {
      dkdv.template operator()<QuadEncoder::kNearestEvenFloat, QuadEncoder::kStochasticFloat>();
    } else {
      dkdv.template operator()<QuadEncoder::kAny, QuadEncoder::kAny>();
    }
  });
}

}  // namespace mx::nn::cuda
