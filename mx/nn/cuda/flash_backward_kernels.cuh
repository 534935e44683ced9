// The backward kernels of tensor-core attention, dQ and dK/dV, and their launch, over a
// tile-product policy T (as flash_forward_kernels.cuh): flash_attention_backward.cu and
// sm90a/flash_backward_wgmma.cu each launch them with their own. Each output is summed by one
// block in a fixed order (no atomics): dQ by one block per query tile, dK and dV by one block
// per key tile over the query heads of its group in order.
#pragma once

#include "mx/nn/cuda/flash_tiles.cuh"

namespace mx::nn::cuda::flash {

struct Ptrs {
  const bf16 *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  bf16 *dq, *dk, *dv;
  float* column_sums;  // AttnBackwardArgs::column_sums
};

inline Ptrs ptrs(const AttnBackwardArgs& a) {
  return {static_cast<const bf16*>(a.qf),
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
          static_cast<bf16*>(a.dv),
          a.column_sums};
}

// ---- dQ: one block per (query tile, batch, head) ----
//
// kDeltaGiven: delta is already in a.delta (delta_kernel), and one sweep over the keys remains.
// Shared memory: the Q and dO tiles, then kBuffers buffers (two: the next key tile's copies run
// during this one's products) of K, V and (when dQ's product reads another tensor than P's) K
// as cast for dQ. The sweep takes 8N keys at a time. With an MX dS at head size 64, four blocks
// share an SM (128 registers); left to itself ptxas took 156, three blocks.
constexpr int dq_min_blocks(int head_size, QuadEncoder ds) {
  return head_size <= 64 && ds != QuadEncoder::kAny && ds != QuadEncoder::kNoMx ? 4 : 0;
}
template <int HS, int N, bool kDeltaGiven, QuadEncoder kEncDs, class T, int kBuffers = 2>
__global__ void __launch_bounds__(kThreadsTc, dq_min_blocks(HS, kEncDs))
    dq_kernel(Ptrs a, Geo g, DevCast ds_x, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  const bool k_same = a.k_dw == a.kf;
  unsigned char* qs = T::tiles(smem_raw);
  unsigned char* dos = qs + kBytes;
  const int per_buffer = (k_same ? 2 : 3) * kBytes;
  auto ks = [&](int i) { return dos + kBytes + i * per_buffer; };
  auto vs = [&](int i) { return ks(i) + kBytes; };
  auto kds = [&](int i) { return k_same ? ks(i) : ks(i) + 2 * kBytes; };
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
  T::template load<HS>(qs, a.qf + q_off, q_stride, q0, g.t);
  T::template load<HS>(dos, a.do_x + q_off, q_stride, q0, g.t);
  auto load_keys = [&](int64_t k0, int buf, bool for_dq) {
    T::template load<HS>(ks(buf), a.kf + kv_off, kv_stride, k0, g.t);
    T::template load<HS>(vs(buf), a.v_dw + kv_off, kv_stride, k0, g.t);
    if (for_dq && !k_same) T::template load<HS>(kds(buf), a.k_dw + kv_off, kv_stride, k0, g.t);
    cp_async_commit();
  };
  typename T::template A<HS> qa, doa;
  auto load_fragments = [&] {
    qa.load(qs);
    doa.load(dos);
  };

  // P and dP of 8M keys of a key tile from its key c0, P as the forward computed it (before its
  // cast).
  auto probabilities = [&]<int M>(float(&p)[M][4], float(&dp)[M][4], int kt, int buf, int c0) {
    T::template abt2<HS, M>(p, qa, ks(buf), dp, doa, vs(buf), c0);
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
      T::ready();
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
    const int buf = kBuffers == 2 ? kt & 1 : 0;
    if (kBuffers == 2 && kt < qt) {
      load_keys(k0 + kTile, buf ^ 1, true);
      cp_async_wait<1>();
    } else {
      if (kBuffers == 1 && kt > 0) load_keys(k0, 0, true);
      cp_async_wait<0>();
    }
    T::ready();
    if (kDeltaGiven && kt == 0) load_fragments();
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 8 * N) {
      // With N = 4, 32 keys (one block of the cast along keys) at a time, which halves the
      // registers that P and dP hold. On the diagonal tile, a warp whose queries all come before
      // these keys has only zeros (where warps multiply on their own).
      if (T::kPerWarp && kt == qt && c0 >= warp * 16 + 16) continue;
      float p[N][4], dp[N][4];
      probabilities(p, dp, kt, buf, c0);
#pragma unroll
      for (int n = 0; n < N; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) p[n][e] = p[n][e] * (dp[n][e] - delta[e >> 1]) * g.scale;
      }
      cast_tile<kEncDs>(ds_x, p, k0 + c0, g.t, row, bh * g.t * g.t, g.t, 1);
      mask_after_asymmetric_cast<false>(ds_x, p, kt == qt, c0);
      T::template xb<HS, N>(dq, p, kds(buf), c0);
    }
    __syncthreads();
  }
  store_rows<HS>(a.dq + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, dq);
  if (a.column_sums != nullptr) {
    const int64_t chunk = b * gridDim.x + qt;
    store_column_sums<HS>(a.column_sums + chunk * g.nh * HS + h * HS,
                          reinterpret_cast<float*>(smem_raw), row, g.t, dq);
  }
}

// ---- dK and dV: one block per (key tile, batch, kv head) ----
//
// With a stochastic dS (the mxfp4 preset's) ptxas holds the kernel to 168 registers at head
// size 64, three blocks per SM, spilling 28 bytes: a GPT-2 124M step under mxfp4 measured 2.1 to
// 2.4 ms faster than with one block per SM allowed (214 registers, two blocks).
//
// Shared memory: the K and V tiles, then kBuffers buffers of the query-side tiles (Q, dO, and dO
// and Q as cast for dV's and dK's products where those are other tensors) with their rows' lse
// and delta. The sweep runs over (query head of the group, query tile) in order; with two
// buffers the next pair's copies run during this one's products. Each step takes 8N queries.
template <int HS, int N, QuadEncoder kEncP, QuadEncoder kEncDs, class T, int kBuffers = 2>
__global__ void __launch_bounds__(kThreadsTc)
    dkdv_kernel(Ptrs a, Geo g, DevCast p_dw, DevCast ds_w, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  const bool do_same = a.do_w == a.do_x, q_same = a.q_dw == a.qf;
  unsigned char* ks = T::tiles(smem_raw);
  unsigned char* vs = ks + kBytes;
  const int extra = (do_same ? 0 : 1) + (q_same ? 0 : 1);
  const int per_buffer = (2 + extra) * kBytes;
  auto qs = [&](int i) { return vs + kBytes + i * per_buffer; };
  auto dos = [&](int i) { return qs(i) + kBytes; };
  auto dows = [&](int i) { return do_same ? dos(i) : dos(i) + kBytes; };
  auto qdws = [&](int i) { return q_same ? qs(i) : qs(i) + (1 + extra) * kBytes; };
  float* lse_s = reinterpret_cast<float*>(qs(kBuffers));  // [kBuffers][kTile]
  float* delta_s = lse_s + kBuffers * kTile;
  const int kt = int(blockIdx.x);  // the longest columns first
  const int per_head = int(gridDim.x) - kt, total = int(g.group) * per_head;
  const int64_t bk = blockIdx.y, b = bk / g.nkv, kvh = bk % g.nkv;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t k0 = int64_t(kt) * kTile;
  const int64_t key[2] = {k0 + warp * 16 + (lane >> 2), k0 + warp * 16 + (lane >> 2) + 8};
  T::template load<HS>(ks, a.kf + kv_off, kv_stride, k0, g.t);
  T::template load<HS>(vs, a.v_dw + kv_off, kv_stride, k0, g.t);
  // Step `it` of the sweep: query head kvh * group + it / per_head, query tile kt + it % per_head.
  auto head_of = [&](int it) { return kvh * g.group + it / per_head; };
  auto first_query = [&](int it) { return int64_t(kt + it % per_head) * kTile; };
  auto load_queries = [&](int it, int buf) {
    const int64_t h = head_of(it), q0 = first_query(it);
    const int64_t bh = b * g.nh + h, q_off = (b * g.t * g.nh + h) * HS;
    T::template load<HS>(qs(buf), a.qf + q_off, q_stride, q0, g.t);
    T::template load<HS>(dos(buf), a.do_x + q_off, q_stride, q0, g.t);
    if (!do_same) T::template load<HS>(dows(buf), a.do_w + q_off, q_stride, q0, g.t);
    if (!q_same) T::template load<HS>(qdws(buf), a.q_dw + q_off, q_stride, q0, g.t);
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
    const int buf = kBuffers == 2 ? it & 1 : 0;
    if (kBuffers == 2 && it + 1 < total) {
      load_queries(it + 1, buf ^ 1);
      cp_async_wait<1>();
    } else {
      if (kBuffers == 1 && it > 0) load_queries(it, 0);
      cp_async_wait<0>();
    }
    T::ready();
    const int64_t bh = b * g.nh + head_of(it), q0 = first_query(it);
    const float* lse_b = lse_s + buf * kTile;
    const float* delta_b = delta_s + buf * kTile;
    // Masks: queries before their key on the diagonal tile, and queries past the end (their
    // zero rows would otherwise give P = 2^-lse2 in a block that a cast along queries scales).
    const bool diagonal = q0 == k0;
    const int queries_left = q0 + kTile > g.t ? int(g.t - q0) : kTile;
    // Transposed tiles: rows are keys, columns queries, taken 8N queries at a time (with N = 4,
    // one block of a cast along queries, which halves the registers that P and dS hold).
#pragma unroll 1
    for (int c0 = 0; c0 < kTile; c0 += 8 * N) {
      // A warp whose keys all come after these queries, or columns past the end: all zeros.
      if ((T::kPerWarp && diagonal && c0 + 8 * N <= warp * 16) || c0 >= queries_left) continue;
      float p[N][4], ds[N][4];
      T::template abt2<HS, N>(p, ks, qs(buf), ds, vs, dos(buf), c0);
      // Most steps need no mask: one branch around the masked loop, not a test per value.
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
            if (round_p) x = bf16_round(x);
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
      cast_tile<kEncP>(p_dw, p, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      cast_tile<kEncDs>(ds_w, ds, q0 + c0, g.t, key, bh * g.t * g.t, 1, g.t);
      mask_after_asymmetric_cast<true>(p_dw, p, diagonal, c0);
      mask_after_asymmetric_cast<true>(ds_w, ds, diagonal, c0);
      T::template xb2<HS, N>(dv, p, dows(buf), dk, ds, qdws(buf), c0);
    }
    __syncthreads();
  }
  const int64_t out_off = (b * g.t * g.nkv + kvh) * HS;
  store_rows<HS>(a.dk + out_off, kv_stride, key, g.t, dk);
  store_rows<HS>(a.dv + out_off, kv_stride, key, g.t, dv);
  if (a.column_sums != nullptr) {
    // After dQ's set, [B x tiles, nh x HS]: dK's and dV's, each [B x tiles, nkv x HS].
    const int64_t chunks = int64_t(gridDim.y / g.nkv) * gridDim.x;
    float* dk_sums =
        a.column_sums + chunks * g.nh * HS + (b * gridDim.x + kt) * kv_stride + kvh * HS;
    float* scratch = reinterpret_cast<float*>(smem_raw);
    store_column_sums<HS>(dk_sums, scratch, key, g.t, dk);
    store_column_sums<HS>(dk_sums + chunks * kv_stride, scratch + (kThreadsTc / 32) * HS, key, g.t,
                          dv);
  }
}

// Launches dQ and dK/dV for head size HS with tile products T, taking the columns of each step
// N n-tiles at a time. kMx: the casts may be MX (the presets' encoders, else the general one);
// otherwise every cast is to bfloat16 and only kernels without MX encoders are built. Without
// delta_given (kMx only), dQ's kernel first sums delta itself.
template <int HS, int N, bool kMx, class T>
void launch_dq_dkdv(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                    const TileCast& ds_x, const TileCast& ds_w, bool round_p, bool delta_given,
                    cudaStream_t s) {
  const Geo g = geo(d);
  const Ptrs p = ptrs(a);
  const unsigned tiles = unsigned((d.t + kTile - 1) / kTile);
  const DevCast c_ds_x = dev_cast(ds_x), c_p_dw = dev_cast(p_dw), c_ds_w = dev_cast(ds_w);
  const int k_tiles = a.k_dw == a.kf ? 0 : 1;
  const int q_tiles = (a.do_w == a.do_x ? 0 : 1) + (a.q_dw == a.qf ? 0 : 1);
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  // The MX kernels take one buffer of the sweep's tiles: they hold more tiles (the casts along
  // other axes) and registers than the bfloat16 ones, and with a second buffer fewer blocks fit
  // an SM than hide each other's copies (a GPT-2 124M step under mxfp6 ran 1.4-1.8 ms faster
  // with one).
  constexpr int nb = kMx ? 1 : 2;
  const size_t dq_shared = (2 + nb * (2 + k_tiles)) * kBytes + T::kAlignSlack;
  auto dq = [&]<QuadEncoder kEnc, bool kDeltaGiven = true>() {
    allow_shared(dq_kernel<HS, N, kDeltaGiven, kEnc, T, nb>, dq_shared);
    dq_kernel<HS, N, kDeltaGiven, kEnc, T, nb>
        <<<dim3(tiles, unsigned(d.b * d.nh)), kThreadsTc, dq_shared, s>>>(p, g, c_ds_x, round_p);
  };
  const size_t dkdv_shared =
      (2 + nb * (2 + q_tiles)) * kBytes + 2 * nb * kTile * sizeof(float) + T::kAlignSlack;
  auto dkdv = [&]<QuadEncoder kEncP, QuadEncoder kEncDs>() {
    allow_shared(dkdv_kernel<HS, N, kEncP, kEncDs, T, nb>, dkdv_shared);
    dkdv_kernel<HS, N, kEncP, kEncDs, T, nb>
        <<<dim3(tiles, unsigned(d.b * d.nkv)), kThreadsTc, dkdv_shared, s>>>(p, g, c_p_dw, c_ds_w,
                                                                             round_p);
  };
  constexpr QuadEncoder kNo = QuadEncoder::kNoMx, kNear = QuadEncoder::kNearestEvenFloat,
                        kStoch = QuadEncoder::kStochasticFloat;
  if constexpr (!kMx) {
    dq.template operator()<kNo>();
    dkdv.template operator()<kNo, kNo>();
  } else {
    if (delta_given) {
      with_encoder(quad_encoder(ds_x), dq);
    } else {
      dq.template operator()<QuadEncoder::kAny, false>();
    }
    // The presets' pairs: P to nearest, dS to nearest or stochastically rounded.
    const QuadEncoder ep = quad_encoder(p_dw), eds = quad_encoder(ds_w);
    if (ep == kNo && eds == kNo) {
      dkdv.template operator()<kNo, kNo>();
    } else if (ep == kNear && eds == kNear) {
      dkdv.template operator()<kNear, kNear>();
    } else if (ep == kNear && eds == kStoch) {
      dkdv.template operator()<kNear, kStoch>();
    } else {
      dkdv.template operator()<QuadEncoder::kAny, QuadEncoder::kAny>();
    }
  }
}

}  // namespace mx::nn::cuda::flash
