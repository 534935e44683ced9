// Causal attention kernels (attention.h). Layouts: q [B, T, nh, hs], k and v [B, T, nkv, hs],
// lse and delta [B, nh, T]; P and dS are never stored, but their casts index them as the
// [B, nh, T, T] tensors of the CPU reference, so stochastic rounding draws the same dithers.
//
// A warp owns one query row (forward, dQ) or one key (dK, dV); lane l holds head dimensions
// l, l + 32, ... (R = hs / 32 of them). Scores come in chunks of 32 keys (or queries), one per
// lane, which is also one MX block of the P or dS cast: blocks of 32 along keys start at key 0,
// along queries at query 0, as the CPU's blocks do.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "mx/io/cat.h"
#include "mx/nn/cuda/act_access.cuh"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/cuda/flash_attention.h"
#include "mx/nn/cuda/fp32_attention.h"
#include "mx/nn/cuda/reductions.cuh"
#include "mx/nn/cuda/tile_cast.cuh"

namespace mx::nn::cuda {
namespace {

constexpr int kWarps = 4;  // rows (or keys) per block
constexpr unsigned kAll = kFullWarp;

struct Geometry {
  int64_t b, t, nh, nkv, hs, group;
  float scale;
  int64_t past, keys;  // keys = past + t rows of k and v per sequence
};

// Row `row` of a [B, T, heads, hs] tensor at (b, head).
template <class T>
__device__ __forceinline__ const T* row_of(const T* x, const Geometry& g, int64_t b, int64_t i,
                                           int64_t heads, int64_t head) {
  return x + ((b * g.t + i) * heads + head) * g.hs;
}

// Key (or value) row j of a [B, past + T, heads, hs] tensor at (b, head).
template <class T>
__device__ __forceinline__ const T* key_row_of(const T* x, const Geometry& g, int64_t b, int64_t j,
                                               int64_t heads, int64_t head) {
  return x + ((b * g.keys + j) * heads + head) * g.hs;
}

template <class T>
__device__ __forceinline__ float dot(const float* shared_row, const T* row, int64_t hs) {
  float acc = 0.0f;
  for (int64_t d = 0; d < hs; ++d) acc += shared_row[d] * ld(row, d);
  return acc;
}

template <class T>
__device__ __forceinline__ void stage(float* shared_row, const T* row, int64_t hs) {
  for (int64_t d = threadIdx.x & 31; d < hs; d += 32) shared_row[d] = ld(row, d);
  __syncwarp();
}

// ---- Forward: one warp per query row, which sees keys 0 .. past + i ----

template <class T, int R>
__global__ void forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, Geometry g,
                               DevCast p_cast, bool round_p) {
  extern __shared__ float shared[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int64_t i = int64_t(blockIdx.x) * kWarps + warp;
  if (i >= g.t) return;
  float* qs = shared + warp * g.hs;
  stage(qs, row_of(q, g, b, i, g.nh, h), g.hs);
  const int64_t last_key = g.past + i;
  // Pass 1: the row's log-sum-exp.
  float m = -INFINITY, l = 0.0f;
  for (int64_t c0 = 0; c0 <= last_key; c0 += 32) {
    const int64_t j = c0 + lane;
    const float s =
        j <= last_key ? dot(qs, key_row_of(k, g, b, j, g.nkv, kvh), g.hs) * g.scale : -INFINITY;
    const float m_new = fmaxf(m, warp_max(s));
    l = l * expf(m - m_new) + warp_sum(j <= last_key ? expf(s - m_new) : 0.0f);
    m = m_new;
  }
  const float row_lse = m + logf(l);
  // Pass 2: O = cast(P) V with P normalized, as the CPU casts it.
  float o[R] = {};
  for (int64_t c0 = 0; c0 <= last_key; c0 += 32) {
    const int64_t j = c0 + lane;
    float p = 0.0f;
    if (j <= last_key) {
      p = expf(dot(qs, key_row_of(k, g, b, j, g.nkv, kvh), g.hs) * g.scale - row_lse);
    }
    if (round_p) p = bf16_round(p);
    const float pc = cast_value(p_cast, p, j < g.keys, (bh * g.t + i) * g.keys + j);
    const int last = int(last_key - c0 < 31 ? last_key - c0 : 31);
    for (int jj = 0; jj <= last; ++jj) {
      const float pj = __shfl_sync(kAll, pc, jj);
      const T* vj = key_row_of(v, g, b, c0 + jj, g.nkv, kvh);
#pragma unroll
      for (int r = 0; r < R; ++r) o[r] += pj * ld(vj, lane + 32 * r);
    }
  }
  T* oi = out + ((b * g.t + i) * g.nh + h) * g.hs;
#pragma unroll
  for (int r = 0; r < R; ++r) st(oi, lane + 32 * r, o[r]);
  if (lane == 0) lse[bh * g.t + i] = row_lse;
}

// ---- Backward ----

struct BackwardPtrs {
  const void *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  void *dq, *dk, *dv;
};

// P_ij as the forward's pass 2 computed it (uncast), and dP_ij = dO_i . V_j.
template <class T>
__device__ __forceinline__ float prob(const float* q_row, const T* k_row, const Geometry& g,
                                      float row_lse, bool round_p) {
  const float p = expf(dot(q_row, k_row, g.hs) * g.scale - row_lse);
  return round_p ? bf16_round(p) : p;
}

// One warp per query row: delta_i = sum_j P_ij dP_ij (the CPU's rowsum), then
// dQ_i = sum_j cast(dS_ij) K_j with dS_ij = P_ij (dP_ij - delta_i) scale.
template <class T, int R>
__global__ void dq_kernel(BackwardPtrs a, Geometry g, DevCast ds_x, bool round_p) {
  extern __shared__ float shared[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int64_t i = int64_t(blockIdx.x) * kWarps + warp;
  if (i >= g.t) return;
  const T *qf = static_cast<const T*>(a.qf), *kf = static_cast<const T*>(a.kf);
  const T *do_x = static_cast<const T*>(a.do_x), *v_dw = static_cast<const T*>(a.v_dw);
  const T* k_dw = static_cast<const T*>(a.k_dw);
  float* qs = shared + warp * 2 * g.hs;
  float* dos = qs + g.hs;
  stage(qs, row_of(qf, g, b, i, g.nh, h), g.hs);
  stage(dos, row_of(do_x, g, b, i, g.nh, h), g.hs);
  const float row_lse = a.lse[bh * g.t + i];
  float partial = 0.0f;
  for (int64_t c0 = 0; c0 <= i; c0 += 32) {
    const int64_t j = c0 + lane;
    if (j <= i) {
      const float p = prob(qs, row_of(kf, g, b, j, g.nkv, kvh), g, row_lse, round_p);
      partial += p * dot(dos, row_of(v_dw, g, b, j, g.nkv, kvh), g.hs);
    }
  }
  const float delta = warp_sum(partial);
  if (lane == 0) a.delta[bh * g.t + i] = delta;
  float dq[R] = {};
  for (int64_t c0 = 0; c0 <= i; c0 += 32) {
    const int64_t j = c0 + lane;
    float ds = 0.0f;
    if (j <= i) {
      const float p = prob(qs, row_of(kf, g, b, j, g.nkv, kvh), g, row_lse, round_p);
      const float dp = dot(dos, row_of(v_dw, g, b, j, g.nkv, kvh), g.hs);
      ds = p * (dp - delta) * g.scale;
    }
    const float dsc = cast_value(ds_x, ds, j < g.t, (bh * g.t + i) * g.t + j);
    const int last = int(i - c0 < 31 ? i - c0 : 31);
    for (int jj = 0; jj <= last; ++jj) {
      const float dj = __shfl_sync(kAll, dsc, jj);
      const T* kj = row_of(k_dw, g, b, c0 + jj, g.nkv, kvh);
#pragma unroll
      for (int r = 0; r < R; ++r) dq[r] += dj * ld(kj, lane + 32 * r);
    }
  }
  T* out = static_cast<T*>(a.dq) + ((b * g.t + i) * g.nh + h) * g.hs;
#pragma unroll
  for (int r = 0; r < R; ++r) st(out, lane + 32 * r, dq[r]);
}

// One warp per key j of a kv head: over its query heads in order and the queries i >= j in
// chunks of 32, dV_j = sum cast(P)_ij dO_i and dK_j = sum cast(dS)_ij Q_i.
template <class T, int R>
__global__ void dkdv_kernel(BackwardPtrs a, Geometry g, DevCast p_dw, DevCast ds_w, bool round_p) {
  extern __shared__ float shared[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t bk = blockIdx.y, b = bk / g.nkv, kvh = bk % g.nkv;
  const int64_t j = int64_t(blockIdx.x) * kWarps + warp;
  if (j >= g.t) return;
  const T *qf = static_cast<const T*>(a.qf), *kf = static_cast<const T*>(a.kf);
  const T *do_x = static_cast<const T*>(a.do_x), *v_dw = static_cast<const T*>(a.v_dw);
  const T *do_w = static_cast<const T*>(a.do_w), *q_dw = static_cast<const T*>(a.q_dw);
  float* ks = shared + warp * 2 * g.hs;
  float* vs = ks + g.hs;
  stage(ks, row_of(kf, g, b, j, g.nkv, kvh), g.hs);
  stage(vs, row_of(v_dw, g, b, j, g.nkv, kvh), g.hs);
  float dk[R] = {}, dv[R] = {};
  for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    const int64_t bh = b * g.nh + h;
    for (int64_t c0 = j / 32 * 32; c0 < g.t; c0 += 32) {
      const int64_t i = c0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i >= j && i < g.t) {
        p = prob(ks, row_of(qf, g, b, i, g.nh, h), g, a.lse[bh * g.t + i], round_p);
        const float dp = dot(vs, row_of(do_x, g, b, i, g.nh, h), g.hs);
        ds = p * (dp - a.delta[bh * g.t + i]) * g.scale;
      }
      const int64_t index = (bh * g.t + i) * g.t + j;
      // Every lane casts (the block's scale is a warp reduction); queries before the key are
      // masked again after it, since an asymmetric cast gives their zeros its offset.
      float pc = cast_value(p_dw, p, i < g.t, index);
      float dsc = cast_value(ds_w, ds, i < g.t, index);
      if (i < j) pc = dsc = 0.0f;
      const int last = int(g.t - 1 - c0 < 31 ? g.t - 1 - c0 : 31);
      for (int ii = 0; ii <= last; ++ii) {
        const float pi = __shfl_sync(kAll, pc, ii), di = __shfl_sync(kAll, dsc, ii);
        const T* dorow = row_of(do_w, g, b, c0 + ii, g.nh, h);
        const T* qrow = row_of(q_dw, g, b, c0 + ii, g.nh, h);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          dv[r] += pi * ld(dorow, lane + 32 * r);
          dk[r] += di * ld(qrow, lane + 32 * r);
        }
      }
    }
  }
  T* dk_out = static_cast<T*>(a.dk) + ((b * g.t + j) * g.nkv + kvh) * g.hs;
  T* dv_out = static_cast<T*>(a.dv) + ((b * g.t + j) * g.nkv + kvh) * g.hs;
#pragma unroll
  for (int r = 0; r < R; ++r) {
    st(dk_out, lane + 32 * r, dk[r]);
    st(dv_out, lane + 32 * r, dv[r]);
  }
}

__global__ void cast_tiles_kernel(float* x, int64_t n, int64_t index0, int padding, DevCast c) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i - (threadIdx.x & 31) >= n) return;  // whole warps only
  const int slot = int(threadIdx.x & 31);
  const bool real = slot < 32 - padding;
  const float v = i < n ? x[i] : 0.0f;
  // Indices as in a tensor whose rows hold only the real slots.
  const float out = cast_value(c, v, real, index0 + i / 32 * (32 - padding) + slot);
  if (i < n && real) x[i] = out;
}

// The quad layout of the tensor-core kernels: a warp casts eight blocks, block g by lanes
// 4g .. 4g + 3, lane 4g + t holding slots 8n + 2t + e; with the encoder those kernels compile in
// for this cast.
template <QuadEncoder kEncoder>
__global__ void cast_quads_kernel(float* x, int64_t n, int64_t index0, int padding, DevCast c) {
  const int lane = int(threadIdx.x & 31), t = lane & 3;
  const int64_t block = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 4;
  if ((block - lane / 4) * 32 >= n) return;  // whole warps only
  float* base = x + block * 32;
  const bool inside = block * 32 < n;
  float v[8];
  for (int k = 0; k < 8; ++k) v[k] = inside ? base[8 * (k >> 1) + 2 * t + (k & 1)] : 0.0f;
  // Indices as in a tensor whose rows hold only the real slots.
  cast_quad<kEncoder>(c, v, 0, 32 - padding, index0 + block * (32 - padding), 1);
  for (int k = 0; k < 8; ++k) {
    const int slot = 8 * (k >> 1) + 2 * t + (k & 1);
    if (inside && slot < 32 - padding) base[slot] = v[k];
  }
}

Geometry geometry(const AttnDims& d) {
  return {d.b,    d.t,         d.nh, d.nkv, d.hs, d.nh / d.nkv, 1.0f / sqrtf(float(d.hs)),
          d.past, d.past + d.t};
}

// Calls fn.template operator()<T, R>() for the activation type and hs / 32.
template <class Fn>
void dispatch(bool bf16_act, int64_t hs, Fn fn) {
  auto with_r = [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    switch (hs / 32) {
      case 1:
        fn.template operator()<T, 1>();
        break;
      case 2:
        fn.template operator()<T, 2>();
        break;
      case 3:
        fn.template operator()<T, 3>();
        break;
      case 4:
        fn.template operator()<T, 4>();
        break;
      default:
        break;
    }
  };
  if (bf16_act) {
    with_r(static_cast<__nv_bfloat16*>(nullptr));
  } else {
    with_r(static_cast<float*>(nullptr));
  }
}

// The tensor-core kernels copy rows in 16-byte pieces.
bool aligned(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

// The backward's operands are the tensors themselves (no recipe casts them), so that the
// forward's output gives delta exactly as P and dP would.
bool uncast_operands(const AttnBackwardArgs& a) {
  return a.out != nullptr && a.qf == a.q_dw && a.kf == a.k_dw && a.do_x == a.do_w;
}

}  // namespace

std::string check_tile_cast(const TileCast& cast) {
  if (cast.kind != TileCast::Kind::kMx) return "";
  if (cast.spec.is_tiled() || cast.spec.block_size != 32) {
    return io::cat("attention on the GPU casts its probabilities in blocks of 32, not ",
                   describe(cast.spec));
  }
  return "";
}

bool attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                       const AttnDims& d, const TileCast& p_cast, bool round_p, bool bf16_act,
                       cudaStream_t s, const PvForDelta& pv) {
  // The tensor-core kernels attend within one window; a cache's queries go to the warps.
  if (d.past == 0 && flash_supports(d, bf16_act, {p_cast}) &&
      aligned({out, q, k, v, pv.pv, pv.v_dw})) {
    return flash_attention_forward(out, lse, q, k, v, d, p_cast, round_p, s, pv);
  }
  if (!bf16_act && fp32_attention_supports(d, {p_cast}, round_p) && aligned({out, q, k, v})) {
    fp32_attention_forward(static_cast<float*>(out), lse, static_cast<const float*>(q),
                           static_cast<const float*>(k), static_cast<const float*>(v), d, s);
    return false;
  }
  attention_forward_cuda_cores(out, lse, q, k, v, d, p_cast, round_p, bf16_act, s);
  return false;
}

bool attention_backward(const AttnBackwardArgs& a, const AttnDims& d, const TileCast& p_dw,
                        const TileCast& ds_x, const TileCast& ds_w, bool round_p, bool bf16_act,
                        cudaStream_t s) {
  if (flash_supports(d, bf16_act, {p_dw, ds_x, ds_w}) &&
      aligned(
          {a.qf, a.kf, a.do_x, a.v_dw, a.do_w, a.k_dw, a.q_dw, a.dq, a.dk, a.dv, a.out, a.pv})) {
    flash_attention_backward(a, d, p_dw, ds_x, ds_w, round_p, s);
    return true;
  }
  if (!bf16_act && uncast_operands(a) && fp32_attention_supports(d, {p_dw, ds_x, ds_w}, round_p) &&
      aligned({a.qf, a.kf, a.do_x, a.v_dw, a.do_w, a.k_dw, a.q_dw, a.dq, a.dk, a.dv, a.out})) {
    fp32_attention_backward(a, d, s);
  } else {
    attention_backward_cuda_cores(a, d, p_dw, ds_x, ds_w, round_p, bf16_act, s);
  }
  return false;
}

void attention_forward_cuda_cores(void* out, float* lse, const void* q, const void* k,
                                  const void* v, const AttnDims& d, const TileCast& p_cast,
                                  bool round_p, bool bf16_act, cudaStream_t s) {
  const Geometry g = geometry(d);
  const DevCast pc = dev_cast(p_cast);
  const dim3 grid(unsigned((d.t + kWarps - 1) / kWarps), unsigned(d.b * d.nh));
  const size_t shared = size_t(kWarps) * size_t(d.hs) * sizeof(float);
  dispatch(bf16_act, d.hs, [&]<class T, int R>() {
    forward_kernel<T, R><<<grid, kWarps * 32, shared, s>>>(
        static_cast<T*>(out), lse, static_cast<const T*>(q), static_cast<const T*>(k),
        static_cast<const T*>(v), g, pc, round_p);
  });
}

void attention_backward_cuda_cores(const AttnBackwardArgs& a, const AttnDims& d,
                                   const TileCast& p_dw, const TileCast& ds_x, const TileCast& ds_w,
                                   bool round_p, bool bf16_act, cudaStream_t s) {
  const Geometry g = geometry(d);
  const BackwardPtrs p{a.qf,   a.kf,  a.do_x,  a.v_dw, a.do_w, a.k_dw,
                       a.q_dw, a.lse, a.delta, a.dq,   a.dk,   a.dv};
  const DevCast c_ds_x = dev_cast(ds_x), c_p_dw = dev_cast(p_dw), c_ds_w = dev_cast(ds_w);
  const size_t shared = size_t(kWarps) * 2 * size_t(d.hs) * sizeof(float);
  const unsigned tiles = unsigned((d.t + kWarps - 1) / kWarps);
  dispatch(bf16_act, d.hs, [&]<class T, int R>() {
    dq_kernel<T, R>
        <<<dim3(tiles, unsigned(d.b * d.nh)), kWarps * 32, shared, s>>>(p, g, c_ds_x, round_p);
    dkdv_kernel<T, R><<<dim3(tiles, unsigned(d.b * d.nkv)), kWarps * 32, shared, s>>>(
        p, g, c_p_dw, c_ds_w, round_p);
  });
}

void cast_tiles_for_test(float* x, int64_t n, int64_t index0, int padding, const TileCast& cast,
                         bool quads, cudaStream_t s) {
  if (quads) {
    const unsigned grid = unsigned((n / 8 + 127) / 128);
    with_encoder(quad_encoder(cast), [&]<QuadEncoder kEnc>() {
      cast_quads_kernel<kEnc><<<grid, 128, 0, s>>>(x, n, index0, padding, dev_cast(cast));
    });
    return;
  }
  cast_tiles_kernel<<<unsigned((n + 127) / 128), 128, 0, s>>>(x, n, index0, padding,
                                                              dev_cast(cast));
}

}  // namespace mx::nn::cuda
