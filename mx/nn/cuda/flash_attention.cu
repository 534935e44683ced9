// Tensor-core causal attention (flash_attention.h). Layouts as in attention.cu: q [B, T, nh, hs],
// k and v [B, T, nkv, hs], lse and delta [B, nh, T].
//
// A block of 128 threads owns a tile of 64 rows (queries, or keys for dK/dV); each warp owns 16
// of them and sweeps 64 columns at a time. Products are m16n8k16 bfloat16 mma.sync with float32
// accumulators; their operands come from shared memory through ldmatrix, except P and dS, which
// stay in registers: an m16n8 accumulator row is spread over the four lanes of a quad, and 32
// consecutive columns of it (four n-tiles) are one MX block of the cast along that axis, so the
// casts run in registers (tile_cast.cuh, cast_quad).
//
// The forward takes two sweeps over the keys: the first finds each row's log-sum-exp, the
// second casts the normalized P, as the CPU does, and multiplies. The backward runs dQ and dK/dV
// as two kernels, so that every output is summed by one block in a fixed order (no atomics):
// dQ (one block per query tile, whose first sweep also finds delta = rowsum(P * dP)), then dK
// and dV (one block per key tile, over the query heads of its group in order).
#include "mx/nn/cuda/flash_attention.h"

#include <cuda_bf16.h>

#include <cstring>

#include "mx/nn/cuda/tile_cast.cuh"

namespace mx::nn::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kTile = 64;  // rows and columns of a tile
constexpr int kThreadsTc = 128;
// Shared-memory row stride, in elements: 16 bytes of padding puts the eight rows that one
// ldmatrix reads in eight different groups of four banks.
template <int HS>
constexpr int kLd = HS + 8;
template <int HS>
constexpr int kTileElems = kTile* kLd<HS>;

struct Geo {
  int64_t t, nh, nkv, group;
  float scale;
};

struct Ptrs {
  const bf16 *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  bf16 *dq, *dk, *dv;
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return uint32_t(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// d += a b for one m16n8k16 tile.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &h, sizeof bits);
  return bits;
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_wait_all() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}

// Rows [row0, row0 + 64) of a tensor whose row r starts at src + r * stride, into a tile; rows
// at or past t are zeros (so that a product with them gives zeros, never NaN).
template <int HS>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int64_t row0,
                                          int64_t t) {
  constexpr int kChunks = HS / 8;  // 16-byte pieces per row
  for (int c = int(threadIdx.x); c < kTile * kChunks; c += kThreadsTc) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    bf16* d = dst + r * kLd<HS> + col;
    if (row0 + r < t) {
      cp_async16(d, src + (row0 + r) * stride + col);
    } else {
      *reinterpret_cast<uint4*>(d) = make_uint4(0, 0, 0, 0);
    }
  }
}

// acc[16 x 64] = A[16 x HS] B[64 x HS]^T, A the warp's 16 rows of a tile, B a whole tile.
template <int HS>
__device__ __forceinline__ void product_abt(float (&acc)[8][4], const bf16* a, const bf16* b) {
  const int lane = int(threadIdx.x & 31), mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int kc = 0; kc < HS / 16; ++kc) {
    uint32_t af[4];
    ldsm_x4(af, a + (r + 8 * (mi & 1)) * kLd<HS> + kc * 16 + 8 * (mi >> 1));
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t bf[4];
      ldsm_x4(bf, b + (np * 16 + r + 8 * (mi >> 1)) * kLd<HS> + kc * 16 + 8 * (mi & 1));
      mma(acc[2 * np], af, bf[0], bf[1]);
      mma(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// out[16 x HS] += X[16 x 64] B[64 x HS], X in accumulator layout (values exact in bfloat16),
// B a whole tile.
template <int HS>
__device__ __forceinline__ void product_xb(float (&out)[HS / 8][4], const float (&x)[8][4],
                                           const bf16* b) {
  const int lane = int(threadIdx.x & 31), mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    const uint32_t af[4] = {pack_bf16(x[2 * kc][0], x[2 * kc][1]),
                            pack_bf16(x[2 * kc][2], x[2 * kc][3]),
                            pack_bf16(x[2 * kc + 1][0], x[2 * kc + 1][1]),
                            pack_bf16(x[2 * kc + 1][2], x[2 * kc + 1][3])};
#pragma unroll
    for (int dp = 0; dp < HS / 16; ++dp) {
      uint32_t bf[4];
      ldsm_x4_trans(bf, b + (kc * 16 + r + 8 * (mi & 1)) * kLd<HS> + dp * 16 + 8 * (mi >> 1));
      mma(out[2 * dp], af, bf[0], bf[1]);
      mma(out[2 * dp + 1], af, bf[2], bf[3]);
    }
  }
}

// Casts the four blocks of 32 that a thread's accumulator tile holds part of: rows `row[0]` and
// `row[1]` (the thread's two), columns [col0, col0 + 32) and [col0 + 32, col0 + 64). An element
// at (row, col) has flat index base + row_stride * row + col_stride * col in the cast tensor;
// the cast runs along columns, which end at `end`.
__device__ __forceinline__ void cast_tile(const DevCast& c, const float* decode, float (&x)[8][4],
                                          int64_t col0, int64_t end, const int64_t (&row)[2],
                                          int64_t base, int64_t row_stride, int64_t col_stride) {
  if (c.kind == int(TileCast::Kind::kNone)) return;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float blk[8];
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        blk[2 * n] = x[half * 4 + n][2 * rr];
        blk[2 * n + 1] = x[half * 4 + n][2 * rr + 1];
      }
      cast_quad(c, blk, col0 + 32 * half, end, base + row_stride * row[rr], col_stride, decode);
#pragma unroll
      for (int n = 0; n < 4; ++n) {
        x[half * 4 + n][2 * rr] = blk[2 * n];
        x[half * 4 + n][2 * rr + 1] = blk[2 * n + 1];
      }
    }
  }
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(kFullWarp, v, 1);
  return v + __shfl_xor_sync(kFullWarp, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullWarp, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFullWarp, v, 2));
}

// Column of element (n, e) of a thread's accumulator tile, relative to the tile.
__device__ __forceinline__ int col_of(int n, int e) {
  return n * 8 + 2 * int(threadIdx.x & 3) + (e & 1);
}

// Stores the thread's part of a warp's [16 x HS] result, rows row[0] and row[1] of a tensor
// whose row r starts at dst + r * stride, rows at or past t skipped.
template <int HS>
__device__ __forceinline__ void store_rows(bf16* dst, int64_t stride, const int64_t (&row)[2],
                                           int64_t t, const float (&x)[HS / 8][4]) {
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    if (row[rr] >= t) continue;
    bf16* out = dst + row[rr] * stride;
#pragma unroll
    for (int n = 0; n < HS / 8; ++n) {
      *reinterpret_cast<__nv_bfloat162*>(out + col_of(n, 0)) =
          __floats2bfloat162_rn(x[n][2 * rr], x[n][2 * rr + 1]);
    }
  }
}

// ---- Forward: one block per (query tile, batch, head) ----

template <int HS>
__global__ void __launch_bounds__(kThreadsTc)
    forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, Geo g,
                   DevCast p_cast, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem);
  bf16* ks = qs + kTileElems<HS>;
  bf16* vs = ks + kTileElems<HS>;
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* qb = q + (b * g.t * g.nh + h) * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  const bf16* qw = qs + warp * 16 * kLd<HS>;
  __shared__ float table[256];
  stage_decode_table(table, p_cast);
  load_tile<HS>(qs, qb, q_stride, q0, g.t);

  // Sweep 1: each row's log-sum-exp, online.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    load_tile<HS>(ks, kb, kv_stride, k0, g.t);
    cp_async_wait_all();
    __syncthreads();
    float s[8][4];
    product_abt<HS>(s, qw, ks);
    __syncthreads();
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int n = 0; n < 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t j = k0 + col_of(n, e);
          float& x = s[n][2 * rr + e];
          x = j <= row[rr] && j < g.t ? x * g.scale : -INFINITY;
          tile_max = fmaxf(tile_max, x);
        }
      }
      const float m_new = fmaxf(m[rr], quad_max(tile_max));
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < 8; ++n)
        sum += expf(s[n][2 * rr] - m_new) + expf(s[n][2 * rr + 1] - m_new);
      l[rr] = l[rr] * expf(m[rr] - m_new) + quad_sum(sum);
      m[rr] = m_new;
    }
  }
  const float row_lse[2] = {m[0] + logf(l[0]), m[1] + logf(l[1])};

  // Sweep 2: O = cast(P) V with P normalized.
  float o[HS / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    load_tile<HS>(ks, kb, kv_stride, k0, g.t);
    load_tile<HS>(vs, vb, kv_stride, k0, g.t);
    cp_async_wait_all();
    __syncthreads();
    float p[8][4];
    product_abt<HS>(p, qw, ks);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = k0 + col_of(n, e), i = row[e >> 1];
        float x = j <= i && j < g.t ? expf(p[n][e] * g.scale - row_lse[e >> 1]) : 0.0f;
        p[n][e] = round_p ? bf16_round(x) : x;
      }
    }
    cast_tile(p_cast, table, p, k0, g.t, row, bh * g.t * g.t, g.t, 1);
    product_xb<HS>(o, p, vs);
    __syncthreads();
  }
  store_rows<HS>(out + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, o);
  if ((lane & 3) == 0) {
    for (int rr = 0; rr < 2; ++rr) {
      if (row[rr] < g.t) lse[bh * g.t + row[rr]] = row_lse[rr];
    }
  }
}

// ---- dQ: one block per (query tile, batch, head) ----

template <int HS>
__global__ void __launch_bounds__(kThreadsTc) dq_kernel(Ptrs a, Geo g, DevCast ds_x, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem);
  bf16* dos = qs + kTileElems<HS>;
  bf16* ks = dos + kTileElems<HS>;
  bf16* vs = ks + kTileElems<HS>;
  bf16* kds = vs + kTileElems<HS>;
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t q_off = (b * g.t * g.nh + h) * HS, kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  float row_lse[2];
  for (int rr = 0; rr < 2; ++rr) row_lse[rr] = row[rr] < g.t ? a.lse[bh * g.t + row[rr]] : 0.0f;
  __shared__ float table[256];
  stage_decode_table(table, ds_x);
  load_tile<HS>(qs, a.qf + q_off, q_stride, q0, g.t);
  load_tile<HS>(dos, a.do_x + q_off, q_stride, q0, g.t);
  const bf16* qw = qs + warp * 16 * kLd<HS>;
  const bf16* dow = dos + warp * 16 * kLd<HS>;

  // P and dP of one key tile, P as the forward computed it (before its cast).
  auto probabilities = [&](float(&p)[8][4], float(&dp)[8][4], int64_t k0) {
    product_abt<HS>(p, qw, ks);
    product_abt<HS>(dp, dow, vs);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int64_t j = k0 + col_of(n, e), i = row[e >> 1];
        const float x = j <= i && j < g.t ? expf(p[n][e] * g.scale - row_lse[e >> 1]) : 0.0f;
        p[n][e] = round_p ? bf16_round(x) : x;
      }
    }
  };

  // Sweep 1: delta = rowsum(P * dP).
  float partial[2] = {0.0f, 0.0f};
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    load_tile<HS>(ks, a.kf + kv_off, kv_stride, k0, g.t);
    load_tile<HS>(vs, a.v_dw + kv_off, kv_stride, k0, g.t);
    cp_async_wait_all();
    __syncthreads();
    float p[8][4], dp[8][4];
    probabilities(p, dp, k0);
    __syncthreads();
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) partial[e >> 1] += p[n][e] * dp[n][e];
    }
  }
  const float delta[2] = {quad_sum(partial[0]), quad_sum(partial[1])};
  if ((lane & 3) == 0) {
    for (int rr = 0; rr < 2; ++rr) {
      if (row[rr] < g.t) a.delta[bh * g.t + row[rr]] = delta[rr];
    }
  }

  // Sweep 2: dQ = cast(dS) K with dS = P (dP - delta) scale, cast along keys.
  float dq[HS / 8][4] = {};
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    load_tile<HS>(ks, a.kf + kv_off, kv_stride, k0, g.t);
    load_tile<HS>(vs, a.v_dw + kv_off, kv_stride, k0, g.t);
    load_tile<HS>(kds, a.k_dw + kv_off, kv_stride, k0, g.t);
    cp_async_wait_all();
    __syncthreads();
    float p[8][4], dp[8][4];
    probabilities(p, dp, k0);
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) p[n][e] = p[n][e] * (dp[n][e] - delta[e >> 1]) * g.scale;
    }
    cast_tile(ds_x, table, p, k0, g.t, row, bh * g.t * g.t, g.t, 1);
    product_xb<HS>(dq, p, kds);
    __syncthreads();
  }
  store_rows<HS>(a.dq + h * HS, g.nh * HS, {b * g.t + row[0], b * g.t + row[1]}, (b + 1) * g.t, dq);
}

// ---- dK and dV: one block per (key tile, batch, kv head) ----

template <int HS>
__global__ void __launch_bounds__(kThreadsTc)
    dkdv_kernel(Ptrs a, Geo g, DevCast p_dw, DevCast ds_w, bool round_p) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* ks = reinterpret_cast<bf16*>(smem);
  bf16* vs = ks + kTileElems<HS>;
  bf16* qs = vs + kTileElems<HS>;
  bf16* dos = qs + kTileElems<HS>;
  bf16* dows = dos + kTileElems<HS>;
  bf16* qdws = dows + kTileElems<HS>;
  float* lse_s = reinterpret_cast<float*>(qdws + kTileElems<HS>);
  float* delta_s = lse_s + kTile;
  const int kt = int(blockIdx.x);  // the longest columns first
  const int n_tiles = int(gridDim.x);
  const int64_t bk = blockIdx.y, b = bk / g.nkv, kvh = bk % g.nkv;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const int64_t kv_off = (b * g.t * g.nkv + kvh) * HS;
  const int64_t k0 = int64_t(kt) * kTile;
  const int64_t key[2] = {k0 + warp * 16 + (lane >> 2), k0 + warp * 16 + (lane >> 2) + 8};
  __shared__ float tables[2][256];
  stage_decode_table(tables[0], p_dw);
  stage_decode_table(tables[1], ds_w);
  load_tile<HS>(ks, a.kf + kv_off, kv_stride, k0, g.t);
  load_tile<HS>(vs, a.v_dw + kv_off, kv_stride, k0, g.t);
  const bf16* kw = ks + warp * 16 * kLd<HS>;
  const bf16* vw = vs + warp * 16 * kLd<HS>;
  float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};
  for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    const int64_t bh = b * g.nh + h, q_off = (b * g.t * g.nh + h) * HS;
    for (int qt = kt; qt < n_tiles; ++qt) {
      const int64_t q0 = int64_t(qt) * kTile;
      load_tile<HS>(qs, a.qf + q_off, q_stride, q0, g.t);
      load_tile<HS>(dos, a.do_x + q_off, q_stride, q0, g.t);
      load_tile<HS>(dows, a.do_w + q_off, q_stride, q0, g.t);
      load_tile<HS>(qdws, a.q_dw + q_off, q_stride, q0, g.t);
      if (threadIdx.x < kTile) {
        const int64_t i = q0 + threadIdx.x;
        lse_s[threadIdx.x] = i < g.t ? a.lse[bh * g.t + i] : 0.0f;
        delta_s[threadIdx.x] = i < g.t ? a.delta[bh * g.t + i] : 0.0f;
      }
      cp_async_wait_all();
      __syncthreads();
      // Transposed tiles: rows are keys, columns queries.
      float p[8][4], ds[8][4];
      product_abt<HS>(p, kw, qs);
      product_abt<HS>(ds, vw, dos);
#pragma unroll
      for (int n = 0; n < 8; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = col_of(n, e);
          const int64_t i = q0 + c, j = key[e >> 1];
          float x = i >= j && i < g.t ? expf(p[n][e] * g.scale - lse_s[c]) : 0.0f;
          if (round_p) x = bf16_round(x);
          p[n][e] = x;
          ds[n][e] = x * (ds[n][e] - delta_s[c]) * g.scale;
        }
      }
      // Both cast along queries: element (query i, key j) has flat index (bh T + i) T + j.
      cast_tile(p_dw, tables[0], p, q0, g.t, key, bh * g.t * g.t, 1, g.t);
      cast_tile(ds_w, tables[1], ds, q0, g.t, key, bh * g.t * g.t, 1, g.t);
      product_xb<HS>(dv, p, dows);
      product_xb<HS>(dk, ds, qdws);
      __syncthreads();
    }
  }
  const int64_t out_off = (b * g.t * g.nkv + kvh) * HS;
  store_rows<HS>(a.dk + out_off, kv_stride, key, g.t, dk);
  store_rows<HS>(a.dv + out_off, kv_stride, key, g.t, dv);
}

Geo geo(const AttnDims& d) {
  return {d.t, d.nh, d.nkv, d.nh / d.nkv, 1.0f / sqrtf(float(d.hs))};
}

template <class Fn>
void with_head_size(int64_t hs, Fn fn) {
  switch (hs) {
    case 32:
      fn.template operator()<32>();
      break;
    case 64:
      fn.template operator()<64>();
      break;
    case 128:
      fn.template operator()<128>();
      break;
    default:
      break;
  }
}

template <class Kernel>
void allow_shared(Kernel kernel, size_t bytes) {
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

}  // namespace

bool flash_supports(const AttnDims& d, bool bf16_act, std::initializer_list<TileCast> casts) {
  if (!bf16_act || (d.hs != 32 && d.hs != 64 && d.hs != 128)) return false;
  for (const TileCast& c : casts) {
    if (c.kind == TileCast::Kind::kNone) return false;
    if (c.kind == TileCast::Kind::kMx && c.spec.asymmetric) return false;
  }
  return true;
}

void flash_attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, const TileCast& p_cast, bool round_p,
                             cudaStream_t s) {
  const Geo g = geo(d);
  const DevCast pc = dev_cast(p_cast);
  const dim3 grid(unsigned((d.t + kTile - 1) / kTile), unsigned(d.b * d.nh));
  with_head_size(d.hs, [&]<int HS>() {
    const size_t shared = 3 * kTileElems<HS> * sizeof(bf16);
    allow_shared(forward_kernel<HS>, shared);
    forward_kernel<HS><<<grid, kThreadsTc, shared, s>>>(
        static_cast<bf16*>(out), lse, static_cast<const bf16*>(q), static_cast<const bf16*>(k),
        static_cast<const bf16*>(v), g, pc, round_p);
  });
}

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
  with_head_size(d.hs, [&]<int HS>() {
    const size_t dq_shared = 5 * kTileElems<HS> * sizeof(bf16);
    allow_shared(dq_kernel<HS>, dq_shared);
    dq_kernel<HS>
        <<<dim3(tiles, unsigned(d.b * d.nh)), kThreadsTc, dq_shared, s>>>(p, g, c_ds_x, round_p);
    const size_t dkdv_shared = 6 * kTileElems<HS> * sizeof(bf16) + 2 * kTile * sizeof(float);
    allow_shared(dkdv_kernel<HS>, dkdv_shared);
    dkdv_kernel<HS><<<dim3(tiles, unsigned(d.b * d.nkv)), kThreadsTc, dkdv_shared, s>>>(
        p, g, c_p_dw, c_ds_w, round_p);
  });
}

}  // namespace mx::nn::cuda
