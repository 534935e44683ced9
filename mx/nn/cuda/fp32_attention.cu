// Tiled float32 causal attention (fp32_attention.h). Layouts as attention.cu: q, out, dO
// [B, T, nh, 64], k, v [B, T, nkv, 64], lse and delta [B, nh, T].
//
// A block of 256 threads owns a 64 x 64 tile of a product; thread (ty, tx) = (tid / 16, tid % 16)
// owns rows 4 ty .. 4 ty + 3 and columns 4 tx .. 4 tx + 3. Each product C += A B reads A row by
// row (A[m][k], four k at a time) and B column block by column block (B[k][n]): both float4
// loads without bank conflicts, 16 FMAs per pair of loads. Operands that enter as B with their
// k along the head dimension (K and V against Q and dO) are stored transposed, one row per lane,
// so that the transposing stores are conflict-free too.
#include <cuda_runtime.h>

#include <cmath>

#include "mx/nn/cuda/fp32_attention.h"

namespace mx::nn::cuda {
namespace {

constexpr int kTile = 64;       // queries and keys per tile, and the head size
constexpr int kLd = kTile + 4;  // row stride in shared memory: float4-aligned, rows 16 banks apart
constexpr int kThreads = 256;
constexpr int kTileFloats = kTile * kLd;

struct Geo {
  int64_t b, t, nh, nkv, group;
  float scale;
};

__device__ __forceinline__ float lane_of(const float4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// acc[r][c] += sum_k A[(4 ty + r) * kLd + k] * B[k * kLd + 4 tx + c], k over one tile.
__device__ __forceinline__ void tile_product(float acc[4][4], const float* A, const float* B,
                                             int ty, int tx) {
#pragma unroll 2
  for (int k = 0; k < kTile; k += 4) {
    float4 a[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) a[r] = *reinterpret_cast<const float4*>(A + (4 * ty + r) * kLd + k);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const float4 b = *reinterpret_cast<const float4*>(B + (k + kk) * kLd + 4 * tx);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const float x = lane_of(a[r], kk);
        acc[r][0] = fmaf(x, b.x, acc[r][0]);
        acc[r][1] = fmaf(x, b.y, acc[r][1]);
        acc[r][2] = fmaf(x, b.z, acc[r][2]);
        acc[r][3] = fmaf(x, b.w, acc[r][3]);
      }
    }
  }
}

// Row `row` of a [B, T, heads, 64] tensor at (b, head), or null past the sequence's end.
__device__ __forceinline__ const float* row_ptr(const float* x, const Geo& g, int64_t b,
                                                int64_t row, int64_t heads, int64_t head) {
  return row < g.t ? x + ((b * g.t + row) * heads + head) * kTile : nullptr;
}

__device__ __forceinline__ float4 load4(const float* row, int c4) {
  return row != nullptr ? __ldg(reinterpret_cast<const float4*>(row) + c4)
                        : make_float4(0.f, 0.f, 0.f, 0.f);
}

// Rows row0 .. row0 + 63 into S[r * kLd + d] (zeros past the end).
__device__ __forceinline__ void load_rows(float* S, const float* x, const Geo& g, int64_t b,
                                          int64_t heads, int64_t head, int64_t row0) {
  for (int idx = threadIdx.x; idx < kTile * kTile / 4; idx += kThreads) {
    const int r = idx >> 4, c4 = idx & 15;
    *reinterpret_cast<float4*>(S + r * kLd + 4 * c4) =
        load4(row_ptr(x, g, b, row0 + r, heads, head), c4);
  }
}

// The same rows transposed: S[d * kLd + r]. Consecutive lanes take consecutive rows.
__device__ __forceinline__ void load_rows_transposed(float* S, const float* x, const Geo& g,
                                                     int64_t b, int64_t heads, int64_t head,
                                                     int64_t row0) {
  for (int idx = threadIdx.x; idx < kTile * kTile / 4; idx += kThreads) {
    const int r = idx & 63, c4 = idx >> 6;
    const float4 v = load4(row_ptr(x, g, b, row0 + r, heads, head), c4);
    S[(4 * c4 + 0) * kLd + r] = v.x;
    S[(4 * c4 + 1) * kLd + r] = v.y;
    S[(4 * c4 + 2) * kLd + r] = v.z;
    S[(4 * c4 + 3) * kLd + r] = v.w;
  }
}

__device__ __forceinline__ void store_tile(float* S, const float v[4][4], int ty, int tx) {
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    *reinterpret_cast<float4*>(S + (4 * ty + r) * kLd + 4 * tx) =
        make_float4(v[r][0], v[r][1], v[r][2], v[r][3]);
  }
}

// Over the 16 threads of one tile row (a half warp).
__device__ __forceinline__ float row_max(float v) {
#pragma unroll
  for (int o = 1; o < 16; o <<= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
  return v;
}
__device__ __forceinline__ float row_sum(float v) {
#pragma unroll
  for (int o = 1; o < 16; o <<= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// Writes rows 4 ty + r of a tile of [B, T, heads, 64] outputs, times `factor[r]`.
__device__ __forceinline__ void write_rows(float* x, const Geo& g, int64_t b, int64_t heads,
                                           int64_t head, int64_t row0, const float v[4][4],
                                           const float factor[4], int ty, int tx) {
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t row = row0 + 4 * ty + r;
    if (row >= g.t) continue;
    float* p = x + ((b * g.t + row) * heads + head) * kTile + 4 * tx;
    *reinterpret_cast<float4*>(p) = make_float4(v[r][0] * factor[r], v[r][1] * factor[r],
                                                v[r][2] * factor[r], v[r][3] * factor[r]);
  }
}

// Heavier query tiles (more keys) first, so that the last wave of blocks is the light ones.
__device__ __forceinline__ int64_t tile_from_back(int64_t tiles) {
  return tiles - 1 - int64_t(blockIdx.x);
}

__global__ void __launch_bounds__(kThreads)
    forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v, Geo g) {
  extern __shared__ float4 shared4[];
  float* Qs = reinterpret_cast<float*>(shared4);
  float* Kt = Qs + kTileFloats;
  float* Vs = Kt + kTileFloats;
  float* Ps = Vs + kTileFloats;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t tiles = (g.t + kTile - 1) / kTile, qt = tile_from_back(tiles);
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int64_t i0 = qt * kTile;
  load_rows(Qs, q, g, b, g.nh, h, i0);
  float m[4], l[4] = {}, o[4][4] = {};
#pragma unroll
  for (int r = 0; r < 4; ++r) m[r] = -INFINITY;
  for (int64_t kt = 0; kt <= qt; ++kt) {
    const int64_t j0 = kt * kTile;
    __syncthreads();  // the previous tile's K, V and P are read
    load_rows_transposed(Kt, k, g, b, g.nkv, kvh, j0);
    load_rows(Vs, v, g, b, g.nkv, kvh, j0);
    __syncthreads();
    float s[4][4] = {};
    tile_product(s, Qs, Kt, ty, tx);
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = i0 + 4 * ty + r;
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t j = j0 + 4 * tx + c;
        s[r][c] = j <= i && j < g.t ? s[r][c] * g.scale : -INFINITY;
        mx = fmaxf(mx, s[r][c]);
      }
      const float m_new = fmaxf(m[r], row_max(mx));
      const float alpha = expf(m[r] - m_new);
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        s[r][c] = expf(s[r][c] - m_new);
        sum += s[r][c];
        o[r][c] *= alpha;
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
    }
    store_tile(Ps, s, ty, tx);
    __syncthreads();
    tile_product(o, Ps, Vs, ty, tx);
  }
  float inv[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const float total = row_sum(l[r]);
    inv[r] = 1.0f / total;
    const int64_t i = i0 + 4 * ty + r;
    if (tx == 0 && i < g.t) lse[bh * g.t + i] = m[r] + logf(total);
  }
  write_rows(out, g, b, g.nh, h, i0, o, inv, ty, tx);
}

// delta = rowsum(dO * O), one warp per (row, head).
__global__ void __launch_bounds__(kThreads)
    delta_kernel(float* delta, const float* dout, const float* out, Geo g) {
  const int64_t w = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (w >= g.b * g.t * g.nh) return;
  const int64_t h = w % g.nh, bt = w / g.nh, b = bt / g.t, i = bt % g.t;
  const float* a = dout + w * kTile;
  const float* c = out + w * kTile;
  float v = a[lane] * c[lane] + a[lane + 32] * c[lane + 32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  if (lane == 0) delta[(b * g.nh + h) * g.t + i] = v;
}

// dQ_i = sum_j dS_ij K_j over the key tiles up to the query tile, dS = P (dP - delta) scale.
__global__ void __launch_bounds__(kThreads) dq_kernel(AttnBackwardArgs a, Geo g) {
  extern __shared__ float4 shared4[];
  float* Qs = reinterpret_cast<float*>(shared4);
  float* dOs = Qs + kTileFloats;
  float* Kt = dOs + kTileFloats;
  float* Vt = Kt + kTileFloats;
  float* Ks = Vt + kTileFloats;
  float* dSs = Ks + kTileFloats;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t tiles = (g.t + kTile - 1) / kTile, qt = tile_from_back(tiles);
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int64_t i0 = qt * kTile;
  load_rows(Qs, static_cast<const float*>(a.qf), g, b, g.nh, h, i0);
  load_rows(dOs, static_cast<const float*>(a.do_x), g, b, g.nh, h, i0);
  float row_lse[4], row_delta[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int64_t i = i0 + 4 * ty + r;
    row_lse[r] = i < g.t ? a.lse[bh * g.t + i] : 0.0f;
    row_delta[r] = i < g.t ? a.delta[bh * g.t + i] : 0.0f;
  }
  float dq[4][4] = {};
  for (int64_t kt = 0; kt <= qt; ++kt) {
    const int64_t j0 = kt * kTile;
    __syncthreads();
    load_rows_transposed(Kt, static_cast<const float*>(a.kf), g, b, g.nkv, kvh, j0);
    load_rows_transposed(Vt, static_cast<const float*>(a.v_dw), g, b, g.nkv, kvh, j0);
    load_rows(Ks, static_cast<const float*>(a.k_dw), g, b, g.nkv, kvh, j0);
    __syncthreads();
    float s[4][4] = {}, dp[4][4] = {};
    tile_product(s, Qs, Kt, ty, tx);
    tile_product(dp, dOs, Vt, ty, tx);
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const int64_t i = i0 + 4 * ty + r;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t j = j0 + 4 * tx + c;
        const float p = j <= i && i < g.t ? expf(s[r][c] * g.scale - row_lse[r]) : 0.0f;
        s[r][c] = p * (dp[r][c] - row_delta[r]) * g.scale;
      }
    }
    store_tile(dSs, s, ty, tx);
    __syncthreads();
    tile_product(dq, dSs, Ks, ty, tx);
  }
  const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  write_rows(static_cast<float*>(a.dq), g, b, g.nh, h, i0, dq, one, ty, tx);
}

// dV_j = sum_i P_ij dO_i and dK_j = sum_i dS_ij Q_i, over the query heads of the key's group
// and the query tiles from the key tile on.
__global__ void __launch_bounds__(kThreads) dkdv_kernel(AttnBackwardArgs a, Geo g) {
  extern __shared__ float4 shared4[];
  float* Ks = reinterpret_cast<float*>(shared4);
  float* Vs = Ks + kTileFloats;
  float* Qt = Vs + kTileFloats;
  float* dOt = Qt + kTileFloats;
  float* Qs = dOt + kTileFloats;
  float* dOs = Qs + kTileFloats;
  float* Ps = dOs + kTileFloats;
  float* dSs = Ps + kTileFloats;
  const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
  const int64_t tiles = (g.t + kTile - 1) / kTile, kt = blockIdx.x;  // heaviest first
  const int64_t bk = blockIdx.y, b = bk / g.nkv, kvh = bk % g.nkv;
  const int64_t j0 = kt * kTile;
  load_rows(Ks, static_cast<const float*>(a.kf), g, b, g.nkv, kvh, j0);
  load_rows(Vs, static_cast<const float*>(a.v_dw), g, b, g.nkv, kvh, j0);
  float dk[4][4] = {}, dv[4][4] = {};
  for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    const int64_t bh = b * g.nh + h;
    for (int64_t qt = kt; qt < tiles; ++qt) {
      const int64_t i0 = qt * kTile;
      __syncthreads();
      load_rows_transposed(Qt, static_cast<const float*>(a.qf), g, b, g.nh, h, i0);
      load_rows_transposed(dOt, static_cast<const float*>(a.do_x), g, b, g.nh, h, i0);
      load_rows(Qs, static_cast<const float*>(a.q_dw), g, b, g.nh, h, i0);
      load_rows(dOs, static_cast<const float*>(a.do_w), g, b, g.nh, h, i0);
      __syncthreads();
      float col_lse[4], col_delta[4];
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int64_t i = i0 + 4 * tx + c;
        col_lse[c] = i < g.t ? a.lse[bh * g.t + i] : 0.0f;
        col_delta[c] = i < g.t ? a.delta[bh * g.t + i] : 0.0f;
      }
      float p[4][4] = {}, ds[4][4] = {};
      tile_product(p, Ks, Qt, ty, tx);
      tile_product(ds, Vs, dOt, ty, tx);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t j = j0 + 4 * ty + r;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t i = i0 + 4 * tx + c;
          const float pij = i >= j && i < g.t ? expf(p[r][c] * g.scale - col_lse[c]) : 0.0f;
          ds[r][c] = pij * (ds[r][c] - col_delta[c]) * g.scale;
          p[r][c] = pij;
        }
      }
      store_tile(Ps, p, ty, tx);
      store_tile(dSs, ds, ty, tx);
      __syncthreads();
      tile_product(dv, Ps, dOs, ty, tx);
      tile_product(dk, dSs, Qs, ty, tx);
    }
  }
  const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  write_rows(static_cast<float*>(a.dk), g, b, g.nkv, kvh, j0, dk, one, ty, tx);
  write_rows(static_cast<float*>(a.dv), g, b, g.nkv, kvh, j0, dv, one, ty, tx);
}

Geo geo(const AttnDims& d) {
  return {d.b, d.t, d.nh, d.nkv, d.nh / d.nkv, 1.0f / sqrtf(float(d.hs))};
}

template <class Kernel>
size_t shared_for(Kernel kernel, int tiles) {
  const size_t bytes = size_t(tiles) * kTileFloats * sizeof(float);
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  return bytes;
}

}  // namespace

bool fp32_attention_supports(const AttnDims& d, std::initializer_list<TileCast> casts,
                             bool round_p) {
  if (d.hs != kTile || d.past != 0 || round_p || d.t < 1 || d.nkv < 1 || d.nh % d.nkv != 0) {
    return false;
  }
  for (const TileCast& c : casts) {
    if (c.kind != TileCast::Kind::kNone) return false;
  }
  return true;
}

void fp32_attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                            const AttnDims& d, cudaStream_t s) {
  static const size_t shared = shared_for(forward_kernel, 4);
  const unsigned tiles = unsigned((d.t + kTile - 1) / kTile);
  forward_kernel<<<dim3(tiles, unsigned(d.b * d.nh)), kThreads, shared, s>>>(out, lse, q, k, v,
                                                                             geo(d));
}

void fp32_attention_backward(const AttnBackwardArgs& a, const AttnDims& d, cudaStream_t s) {
  static const size_t dq_shared = shared_for(dq_kernel, 6);
  static const size_t dkdv_shared = shared_for(dkdv_kernel, 8);
  const Geo g = geo(d);
  const int64_t warps = d.b * d.t * d.nh;
  delta_kernel<<<unsigned((warps * 32 + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      a.delta, static_cast<const float*>(a.do_x), static_cast<const float*>(a.out), g);
  const unsigned tiles = unsigned((d.t + kTile - 1) / kTile);
  dq_kernel<<<dim3(tiles, unsigned(d.b * d.nh)), kThreads, dq_shared, s>>>(a, g);
  dkdv_kernel<<<dim3(tiles, unsigned(d.b * d.nkv)), kThreads, dkdv_shared, s>>>(a, g);
}

}  // namespace mx::nn::cuda
