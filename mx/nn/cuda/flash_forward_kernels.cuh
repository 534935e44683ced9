// The forward kernels of tensor-core attention and their launch, over a tile-product policy T
// (MmaTiles in flash_tiles.cuh for the sm_90 build, WgmmaTiles in sm90a/wgmma_tiles.cuh for
// Hopper's warpgroup products): flash_attention.cu and sm90a/flash_forward_wgmma.cu each launch
// them with their own.
//
// The forward takes two sweeps over the keys when P is cast to MX: the first (lse_kernel, a
// kernel of its own) finds each row's log-sum-exp, the second casts the normalized P, as the CPU
// does, and multiplies (and, for the backward's delta, multiplies P before its cast by v_dw too:
// PvForDelta). Without an MX cast it takes one sweep with the online softmax.
#pragma once

#include "mx/nn/cuda/flash_tiles.cuh"

namespace mx::nn::cuda::flash {

// Tile buffers of the MX forward: two (the next key tile's copies run during this one's
// products) where a block's shared memory stays small enough for several blocks per SM.
template <int HS>
constexpr int kForwardBuffers = HS <= 64 ? 2 : 1;

// ---- Sweep 1 of the MX forward: each row's log-sum-exp ----
//
// A kernel of its own: without the second sweep's output accumulators it needs far fewer
// registers, so more blocks share an SM while it reads the keys. The rows' log-sum-exps go to
// `lse`, where the second sweep and the backward read them. Blocks as the forward's; K tiles
// double-buffered. Its key loop is forward_online_kernel's without V, written out: one helper
// for both loops took the warpgroup build's forward_online_kernel from 98 to 102 registers (162
// to 165 at head size 128), and no faster.
template <int HS, class T>
__global__ void __launch_bounds__(kThreadsTc)
    lse_kernel(float* lse, const bf16* q, const bf16* k, Geo g) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  unsigned char* qs = T::tiles(smem_raw);
  auto ks = [&](int i) { return qs + (1 + i) * kBytes; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t kv_stride = g.nkv * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  T::template load<HS>(qs, q + (b * g.t * g.nh + h) * HS, g.nh * HS, q0, g.t);
  T::template load<HS>(ks(0), kb, kv_stride, 0, g.t);
  cp_async_commit();
  // m in units of the raw score, l in powers of two.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  typename T::template A<HS> qa;
  for (int kt = 0; kt <= qt; ++kt) {
    const int buf = kt & 1;
    if (kt < qt) {
      T::template load<HS>(ks(buf ^ 1), kb, kv_stride, int64_t(kt + 1) * kTile, g.t);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    T::ready();
    if (kt == 0) qa.load(qs);
    float s[8][4];
    T::template abt<HS, 8>(s, qa, ks(buf));
    if (kt == qt) mask_above_diagonal(s);
    online_softmax_step(s, m, l, g.scale_log2, [](int, float) {});
    __syncthreads();  // before the next tile's copies overwrite this buffer
  }
  if ((lane & 3) == 0) {
    for (int rr = 0; rr < 2; ++rr) {
      if (row[rr] < g.t) lse[bh * g.t + row[rr]] = row_lse2_of(m[rr], l[rr], g.scale_log2) * kLn2;
    }
  }
}

// ---- Sweep 2 of the MX forward: one block per (query tile, batch, head) ----
//
// Shared memory: the Q tile, then per buffer K, V and (kPv) v_dw. kPv: also pv = P v_dw with P
// before its cast (PvForDelta). P = 2^(s scale log2(e) - lse log2(e)), from lse_kernel's
// log-sum-exps as the backward takes them.
template <int HS, bool kPv, QuadEncoder kEncP, class T>
__global__ void __launch_bounds__(kThreadsTc)
    forward_kernel(bf16* out, const float* lse, const bf16* q, const bf16* k, const bf16* v, Geo g,
                   DevCast p_cast, bool round_p, bf16* pv_out, const bf16* v_dw) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  constexpr int kPerBuffer = kPv ? 3 : 2;
  unsigned char* qs = T::tiles(smem_raw);
  auto ks = [&](int i) { return qs + (1 + kPerBuffer * i) * kBytes; };
  auto vs = [&](int i) { return ks(i) + kBytes; };
  auto vdws = [&](int i) { return ks(i) + 2 * kBytes; };  // kPv only
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);    // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* qb = q + (b * g.t * g.nh + h) * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  const bf16* vdwb = kPv ? v_dw + (b * g.t * g.nkv + kvh) * HS : nullptr;
  T::template load<HS>(qs, qb, q_stride, q0, g.t);
  // Key tile kt's copies into buffer buf.
  auto issue = [&](int kt, int buf) {
    const int64_t k0 = int64_t(kt) * kTile;
    T::template load<HS>(ks(buf), kb, kv_stride, k0, g.t);
    T::template load<HS>(vs(buf), vb, kv_stride, k0, g.t);
    if constexpr (kPv) T::template load<HS>(vdws(buf), vdwb, kv_stride, k0, g.t);
    cp_async_commit();
  };
  // Waits for tile kt's copies (issuing tile kt + 1's first where there are two buffers) and
  // returns its buffer.
  auto arrive = [&](int kt) {
    if constexpr (kForwardBuffers<HS> == 2) {
      if (kt < qt) {
        issue(kt + 1, (kt + 1) & 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
    } else {
      issue(kt, 0);
      cp_async_wait<0>();
    }
    T::ready();
    return kForwardBuffers<HS> == 2 ? kt & 1 : 0;
  };
  float row_lse2[2];
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    row_lse2[rr] = row[rr] < g.t ? lse[bh * g.t + row[rr]] * kLog2e : 0.0f;
  }

  // O = cast(P) V with P normalized.
  float o[HS / 8][4] = {};
  float pv[kPv ? HS / 8 : 1][4] = {};
  if constexpr (kForwardBuffers<HS> == 2) issue(0, 0);
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = arrive(kt);
    float p[8][4];
    T::template abt<HS, 8>(p, qs, ks(buf));
    probabilities_from_lse(p, row_lse2, g.scale_log2, kt == qt, round_p);
    if constexpr (kPv) T::template xb<HS, 8>(pv, p, vdws(buf));
    cast_tile<kEncP>(p_cast, p, k0, g.t, row, bh * g.t * g.t, g.t, 1);
    mask_after_asymmetric_cast<false>(p_cast, p, kt == qt);
    T::template xb<HS, 8>(o, p, vs(buf));
    __syncthreads();
  }
  const int64_t out_rows[2] = {b * g.t + row[0], b * g.t + row[1]};
  store_rows<HS>(out + h * HS, g.nh * HS, out_rows, (b + 1) * g.t, o);
  if constexpr (kPv) store_rows<HS>(pv_out + h * HS, g.nh * HS, out_rows, (b + 1) * g.t, pv);
}

// ---- Forward without an MX cast of P: one sweep, online softmax ----
//
// When P is only rounded to bfloat16 for its product, the row's running maximum can stand in for
// its log-sum-exp: O = sum_j bf16(exp(s_ij - m_i)) v_j / l_i, the usual flash-attention forward,
// instead of sum_j bf16(exp(s_ij - lse_i)) v_j. The two differ by bfloat16 rounding of P only, and
// this one reads each key tile once. K and V tiles are double-buffered: the next tile's copies
// run while this one is multiplied.
template <int HS, class T>
__global__ void __launch_bounds__(kThreadsTc)
    forward_online_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                          Geo g) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kBytes = int(T::template kTileBytes<HS>);
  unsigned char* qs = T::tiles(smem_raw);
  // Buffer i: K at tile 1 + 2i, V at 2 + 2i (computed, not indexed: no local-memory arrays).
  auto ks = [&](int i) { return qs + (1 + 2 * i) * kBytes; };
  auto vs = [&](int i) { return qs + (2 + 2 * i) * kBytes; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  T::template load<HS>(qs, q + (b * g.t * g.nh + h) * HS, q_stride, q0, g.t);
  T::template load<HS>(ks(0), kb, kv_stride, 0, g.t);
  T::template load<HS>(vs(0), vb, kv_stride, 0, g.t);
  cp_async_commit();

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[HS / 8][4] = {};
  typename T::template A<HS> qa;
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = kt & 1;
    if (kt < qt) {
      T::template load<HS>(ks(buf ^ 1), kb, kv_stride, k0 + kTile, g.t);
      T::template load<HS>(vs(buf ^ 1), vb, kv_stride, k0 + kTile, g.t);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    T::ready();
    if (kt == 0) qa.load(qs);
    float s[8][4];
    T::template abt<HS, 8>(s, qa, ks(buf));
    if (kt == qt) mask_above_diagonal(s);
    online_softmax_step(s, m, l, g.scale_log2, [&](int rr, float correction) {
#pragma unroll
      for (int d = 0; d < HS / 8; ++d) {
        o[d][2 * rr] *= correction;
        o[d][2 * rr + 1] *= correction;
      }
    });
    T::template xb<HS, 8>(o, s, vs(buf));
    __syncthreads();
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

// Launches the forward for head size HS with tile products T; returns whether it wrote pv.pv
// (an MX cast of P and pv given).
template <int HS, class T>
bool launch_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                    const AttnDims& d, const TileCast& p_cast, bool round_p, cudaStream_t s,
                    const PvForDelta& pv) {
  const Geo g = geo(d);
  const dim3 grid(unsigned((d.t + kTile - 1) / kTile), unsigned(d.b * d.nh));
  const auto* qb = static_cast<const bf16*>(q);
  const auto* kb = static_cast<const bf16*>(k);
  const auto* vb = static_cast<const bf16*>(v);
  if (p_cast.kind != TileCast::Kind::kMx) {
    const size_t shared = 5 * T::template kTileBytes<HS> + T::kAlignSlack;
    allow_shared(forward_online_kernel<HS, T>, shared);
    forward_online_kernel<HS, T>
        <<<grid, kThreadsTc, shared, s>>>(static_cast<bf16*>(out), lse, qb, kb, vb, g);
    return false;
  }
  const bool with_pv = pv.pv != nullptr && pv.v_dw != nullptr;
  const DevCast pc = dev_cast(p_cast);
  const size_t lse_shared = 3 * T::template kTileBytes<HS> + T::kAlignSlack;
  allow_shared(lse_kernel<HS, T>, lse_shared);
  lse_kernel<HS, T><<<grid, kThreadsTc, lse_shared, s>>>(lse, qb, kb, g);
  auto launch = [&]<bool kPv, QuadEncoder kEnc>() {
    const size_t shared =
        size_t(1 + kForwardBuffers<HS> * (kPv ? 3 : 2)) * T::template kTileBytes<HS> +
        T::kAlignSlack;
    allow_shared(forward_kernel<HS, kPv, kEnc, T>, shared);
    forward_kernel<HS, kPv, kEnc, T><<<grid, kThreadsTc, shared, s>>>(
        static_cast<bf16*>(out), lse, qb, kb, vb, g, pc, round_p, static_cast<bf16*>(pv.pv),
        static_cast<const bf16*>(pv.v_dw));
  };
  // The presets' casts take the fixed encoders, with P v_dw (training) or without it
  // (inference).
  with_encoder(quad_encoder(p_cast), [&]<QuadEncoder kEnc>() {
    if (with_pv) {
      launch.template operator()<true, kEnc>();
    } else {
      launch.template operator()<false, kEnc>();
    }
  });
  return with_pv;
}

}  // namespace mx::nn::cuda::flash
