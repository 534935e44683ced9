// Tensor-core causal attention (flash_attention.h). Layouts as in attention.cu: q [B, T, nh, hs],
// k and v [B, T, nkv, hs], lse and delta [B, nh, T].
//
// A block of 128 threads owns a tile of 64 rows (queries, or keys for dK/dV); each warp owns 16
// of them and sweeps 64 columns at a time (the backward kernels 32 at a time within each tile:
// half the registers for P and dS, which lets more blocks share an SM). Products are m16n8k16
// bfloat16 mma.sync with float32 accumulators; their operands come from shared memory through
// ldmatrix, except P and dS, which stay in registers: an m16n8 accumulator row is spread over the
// four lanes of a quad, and 32 consecutive columns of it (four n-tiles) are one MX block of the
// cast along that axis, so the casts run in registers (tile_cast.cuh, cast_quad). Kernels for
// casts without MX (QuadEncoder::kNoMx) hold none of the MX encoders' code or registers.
//
// The forward takes two sweeps over the keys: the first finds each row's log-sum-exp, the
// second casts the normalized P, as the CPU does, and multiplies (and, for the backward's
// delta, multiplies P before its cast by v_dw too: PvForDelta). The backward runs dQ and dK/dV
// as two kernels, so that every output is summed by one block in a fixed order (no atomics):
// dQ (one block per query tile; delta = rowsum(P * dP) comes from the forward's P v_dw or its
// output, else from a first sweep of this kernel), then dK and dV (one block per key tile, over
// the query heads of its group in order).
#include "mx/nn/cuda/flash_attention.h"

#include <cuda_bf16.h>

#include <cstring>

#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/nn/cuda/tile_cast.cuh"

namespace mx::nn::cuda {
namespace {

using mx::cuda::cp_async_commit;
using mx::cuda::cp_async_wait;
using mx::cuda::mma_m16n8k16_bf16;
using mx::cuda::shared_address;

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
  float scale;       // 1 / sqrt(hs)
  float scale_log2;  // scale * log2(e): softmax runs in powers of two, one FFMA and one MUFU each
};

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// 2^x on the special-function unit (relative error about 2^-22, 2^-inf = 0): P is rounded to
// bfloat16 or coarser before every product that reads it.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

struct Ptrs {
  const bf16 *qf, *kf, *do_x, *v_dw, *do_w, *k_dw, *q_dw;
  const float* lse;
  float* delta;
  bf16 *dq, *dk, *dv;
};

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p)));
}

__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(p)));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t bits;
  memcpy(&bits, &h, sizeof bits);
  return bits;
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(shared_address(dst)), "l"(src));
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

// The A fragments of a warp's 16 rows of a tile (16 x HS), for products that reuse them.
template <int HS>
__device__ __forceinline__ void load_a(uint32_t (&af)[HS / 16][4], const bf16* a) {
  const int lane = int(threadIdx.x & 31), mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int kc = 0; kc < HS / 16; ++kc) {
    ldsm_x4(af[kc], a + (r + 8 * (mi & 1)) * kLd<HS> + kc * 16 + 8 * (mi >> 1));
  }
}

// acc[16 x 8N] = A[16 x HS] B[8N x HS]^T, A a warp's fragments, B the first 8N rows of a tile
// (N = 8: all 64).
template <int HS, int N = 8>
__device__ __forceinline__ void product_abt(float (&acc)[N][4], const uint32_t (&af)[HS / 16][4],
                                            const bf16* b) {
  const int lane = int(threadIdx.x & 31), mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
  for (int kc = 0; kc < HS / 16; ++kc) {
#pragma unroll
    for (int np = 0; np < N / 2; ++np) {
      uint32_t bf[4];
      ldsm_x4(bf, b + (np * 16 + r + 8 * (mi >> 1)) * kLd<HS> + kc * 16 + 8 * (mi & 1));
      mma_m16n8k16_bf16(acc[2 * np], af[kc], bf[0], bf[1]);
      mma_m16n8k16_bf16(acc[2 * np + 1], af[kc], bf[2], bf[3]);
    }
  }
}

// The same with A the warp's 16 rows of a tile in shared memory.
template <int HS, int N = 8>
__device__ __forceinline__ void product_abt(float (&acc)[N][4], const bf16* a, const bf16* b) {
  uint32_t af[HS / 16][4];
  load_a<HS>(af, a);
  product_abt<HS, N>(acc, af, b);
}

// out[16 x HS] += X[16 x 8N] B[8N x HS], X in accumulator layout rounded to bfloat16 (exact for
// symmetric MX casts and bfloat16 ones; an asymmetric cast's value, code times scale plus a
// bfloat16 offset, can need more bits), B the first 8N rows of a tile.
template <int HS, int N = 8>
__device__ __forceinline__ void product_xb(float (&out)[HS / 8][4], const float (&x)[N][4],
                                           const bf16* b) {
  const int lane = int(threadIdx.x & 31), mi = lane >> 3, r = lane & 7;
#pragma unroll
  for (int kc = 0; kc < N / 2; ++kc) {
    const uint32_t af[4] = {pack_bf16(x[2 * kc][0], x[2 * kc][1]),
                            pack_bf16(x[2 * kc][2], x[2 * kc][3]),
                            pack_bf16(x[2 * kc + 1][0], x[2 * kc + 1][1]),
                            pack_bf16(x[2 * kc + 1][2], x[2 * kc + 1][3])};
#pragma unroll
    for (int dp = 0; dp < HS / 16; ++dp) {
      uint32_t bf[4];
      ldsm_x4_trans(bf, b + (kc * 16 + r + 8 * (mi & 1)) * kLd<HS> + dp * 16 + 8 * (mi >> 1));
      mma_m16n8k16_bf16(out[2 * dp], af, bf[0], bf[1]);
      mma_m16n8k16_bf16(out[2 * dp + 1], af, bf[2], bf[3]);
    }
  }
}

// Casts the blocks of 32 that a thread's accumulator tile of 8N columns holds part of: rows
// `row[0]` and `row[1]` (the thread's two), columns [col0, col0 + 32), [col0 + 32, col0 + 64)
// (N = 8). An element at (row, col) has flat index base + row_stride * row + col_stride * col in
// the cast tensor; the cast runs along columns, which end at `end`. Without MX (kNoMx) it leaves
// the tile as it is: the product that reads it rounds it to bfloat16 (pack_bf16), as the cast
// would.
template <QuadEncoder kEncoder, int N = 8>
__device__ __forceinline__ void cast_tile(const DevCast& c, float (&x)[N][4], int64_t col0,
                                          int64_t end, const int64_t (&row)[2], int64_t base,
                                          int64_t row_stride, int64_t col_stride) {
  static_assert(N % 4 == 0, "whole blocks of 32 columns");
  if constexpr (kEncoder != QuadEncoder::kNoMx) {
    if (c.kind == int(TileCast::Kind::kNone)) return;
#pragma unroll
    for (int half = 0; half < N / 4; ++half) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        float blk[8];
#pragma unroll
        for (int n = 0; n < 4; ++n) {
          blk[2 * n] = x[half * 4 + n][2 * rr];
          blk[2 * n + 1] = x[half * 4 + n][2 * rr + 1];
        }
        cast_quad<kEncoder>(c, blk, col0 + 32 * half, end, base + row_stride * row[rr], col_stride);
#pragma unroll
        for (int n = 0; n < 4; ++n) {
          x[half * 4 + n][2 * rr] = blk[2 * n];
          x[half * 4 + n][2 * rr + 1] = blk[2 * n + 1];
        }
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

// Rows of a thread's accumulator tile relative to the block's 64-row tile: its warp's 16 rows,
// the thread's two of them (quad row, and 8 below).
__device__ __forceinline__ int row_in_tile(int rr) {
  return int(threadIdx.x >> 5) * 16 + int(threadIdx.x & 31) / 4 + 8 * rr;
}

// A diagonal tile (query tile = key tile): scores of keys after their query become -inf.
__device__ __forceinline__ void mask_above_diagonal(float (&s)[8][4]) {
#pragma unroll
  for (int n = 0; n < 8; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (col_of(n, e) > row_in_tile(e >> 1)) s[n][e] = -INFINITY;
    }
  }
}

// An asymmetric cast moves a block's zeros by its offset, so on a diagonal tile the causal mask
// applies again after the cast: masked entries of P and dS stay exactly zero in the products,
// as in the CPU reference. Rows are queries (kKeysAreRows false) or keys (the transposed tiles
// of dK and dV); the thread's 8N columns start at column `col0` of the tile.
template <bool kKeysAreRows, int N = 8>
__device__ __forceinline__ void mask_after_asymmetric_cast(const DevCast& c, float (&x)[N][4],
                                                           bool diagonal, int col0 = 0) {
  if (!diagonal || c.kind != int(TileCast::Kind::kMx) || !c.spec.asym) return;
#pragma unroll
  for (int n = 0; n < N; ++n) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int col = col0 + col_of(n, e), row = row_in_tile(e >> 1);
      if (kKeysAreRows ? col < row : col > row) x[n][e] = 0.0f;
    }
  }
}

// One key tile of the online softmax over raw scores s (masked ones -inf): m is each row's
// running maximum score, l its running sum of 2^((s - m) scale_log2). s becomes those powers for
// the tile; `rescale(rr, c)` is told the factor c by which row rr's earlier sums shrank.
template <class Rescale>
__device__ __forceinline__ void online_softmax_step(float (&s)[8][4], float (&m)[2], float (&l)[2],
                                                    float scale_log2, Rescale rescale) {
#pragma unroll
  for (int rr = 0; rr < 2; ++rr) {
    float tile_max = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; ++n) tile_max = fmaxf(tile_max, fmaxf(s[n][2 * rr], s[n][2 * rr + 1]));
    const float m_new = fmaxf(m[rr], quad_max(tile_max));
    const float offset = m_new * scale_log2;
    const float correction = exp2_approx(m[rr] * scale_log2 - offset);  // 0 while m is -inf
    float sum = 0.0f;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        float& x = s[n][2 * rr + e];
        x = exp2_approx(fmaf(x, scale_log2, -offset));
        sum += x;
      }
    }
    l[rr] = l[rr] * correction + quad_sum(sum);
    m[rr] = m_new;
    rescale(rr, correction);
  }
}

// A row's log-sum-exp in powers of two (lse2: P = 2^(s scale_log2 - lse2)) from the online
// softmax's running maximum m and sum l.
__device__ __forceinline__ float row_lse2_of(float m, float l, float scale_log2) {
  return m * scale_log2 + log2f(l);
}

// P = 2^(s scale_log2 - lse2) from raw scores, zero above the diagonal of a diagonal tile, and
// rounded to bfloat16 when round_p; the thread's 8N columns start at column col0 of the tile.
template <int N>
__device__ __forceinline__ void probabilities_from_lse(float (&s)[N][4], const float (&lse2)[2],
                                                       float scale_log2, bool diagonal,
                                                       bool round_p, int col0 = 0) {
  auto run = [&]<bool kMasked>() {
#pragma unroll
    for (int n = 0; n < N; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = exp2_approx(fmaf(s[n][e], scale_log2, -lse2[e >> 1]));
        if (kMasked && col0 + col_of(n, e) > row_in_tile(e >> 1)) x = 0.0f;
        s[n][e] = round_p ? bf16_round(x) : x;
      }
    }
  };
  // One branch around the masked loop, not a test per value.
  if (diagonal) {
    run.template operator()<true>();
  } else {
    run.template operator()<false>();
  }
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

// Tile buffers of the MX forward: two (the next key tile's copies run during this one's
// products) where a block's shared memory stays small enough for several blocks per SM.
template <int HS>
constexpr int kForwardBuffers = HS <= 64 ? 2 : 1;

// Shared memory of the MX forward: the Q tile, then per buffer K, V and (kPv) v_dw.
template <int HS, bool kPv>
constexpr size_t forward_shared_bytes() {
  return size_t(1 + kForwardBuffers<HS> * (kPv ? 3 : 2)) * kTileElems<HS> * sizeof(bf16);
}

// kPv: also pv = P v_dw with P before its cast (PvForDelta).
template <int HS, bool kPv, QuadEncoder kEncP>
__global__ void __launch_bounds__(kThreadsTc)
    forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, Geo g,
                   DevCast p_cast, bool round_p, bf16* pv_out, const bf16* v_dw) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int kPerBuffer = kPv ? 3 : 2;
  bf16* qs = reinterpret_cast<bf16*>(smem);
  auto ks = [&](int i) { return qs + (1 + kPerBuffer * i) * kTileElems<HS>; };
  auto vs = [&](int i) { return ks(i) + kTileElems<HS>; };
  auto vdws = [&](int i) { return ks(i) + 2 * kTileElems<HS>; };  // kPv only
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);            // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* qb = q + (b * g.t * g.nh + h) * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  const bf16* qw = qs + warp * 16 * kLd<HS>;
  const bf16* vdwb = kPv ? v_dw + (b * g.t * g.nkv + kvh) * HS : nullptr;
  load_tile<HS>(qs, qb, q_stride, q0, g.t);
  // Key tile kt's copies into buffer buf (sweep 1 reads K only).
  auto issue = [&](int kt, int buf, bool sweep2) {
    const int64_t k0 = int64_t(kt) * kTile;
    load_tile<HS>(ks(buf), kb, kv_stride, k0, g.t);
    if (sweep2) {
      load_tile<HS>(vs(buf), vb, kv_stride, k0, g.t);
      if constexpr (kPv) load_tile<HS>(vdws(buf), vdwb, kv_stride, k0, g.t);
    }
    cp_async_commit();
  };
  // Waits for tile kt's copies (issuing tile kt + 1's first where there are two buffers) and
  // returns its buffer.
  auto arrive = [&](int kt, bool sweep2) {
    if constexpr (kForwardBuffers<HS> == 2) {
      if (kt < qt) {
        issue(kt + 1, (kt + 1) & 1, sweep2);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
    } else {
      issue(kt, 0, sweep2);
      cp_async_wait<0>();
    }
    __syncthreads();
    return kForwardBuffers<HS> == 2 ? kt & 1 : 0;
  };

  // Sweep 1: each row's log-sum-exp, online (m in units of the raw score, l in powers of two).
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  if constexpr (kForwardBuffers<HS> == 2) issue(0, 0, false);
  for (int kt = 0; kt <= qt; ++kt) {
    const int buf = arrive(kt, false);
    float s[8][4];
    product_abt<HS>(s, qw, ks(buf));
    __syncthreads();  // before the next tile's copies overwrite this buffer
    if (kt == qt) mask_above_diagonal(s);
    online_softmax_step(s, m, l, g.scale_log2, [](int, float) {});
  }
  const float row_lse2[2] = {row_lse2_of(m[0], l[0], g.scale_log2),
                             row_lse2_of(m[1], l[1], g.scale_log2)};

  // Sweep 2: O = cast(P) V with P normalized.
  float o[HS / 8][4] = {};
  float pv[kPv ? HS / 8 : 1][4] = {};
  if constexpr (kForwardBuffers<HS> == 2) issue(0, 0, true);
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = arrive(kt, true);
    float p[8][4];
    product_abt<HS>(p, qw, ks(buf));
    probabilities_from_lse(p, row_lse2, g.scale_log2, kt == qt, round_p);
    if constexpr (kPv) product_xb<HS>(pv, p, vdws(buf));
    cast_tile<kEncP>(p_cast, p, k0, g.t, row, bh * g.t * g.t, g.t, 1);
    mask_after_asymmetric_cast<false>(p_cast, p, kt == qt);
    product_xb<HS>(o, p, vs(buf));
    __syncthreads();
  }
  const int64_t out_rows[2] = {b * g.t + row[0], b * g.t + row[1]};
  store_rows<HS>(out + h * HS, g.nh * HS, out_rows, (b + 1) * g.t, o);
  if constexpr (kPv) store_rows<HS>(pv_out + h * HS, g.nh * HS, out_rows, (b + 1) * g.t, pv);
  if ((lane & 3) == 0) {
    for (int rr = 0; rr < 2; ++rr) {
      if (row[rr] < g.t) lse[bh * g.t + row[rr]] = row_lse2[rr] * kLn2;
    }
  }
}

// ---- Forward without an MX cast of P: one sweep, online softmax ----
//
// When P is only rounded to bfloat16 for its product, the row's running maximum can stand in for
// its log-sum-exp: O = sum_j bf16(exp(s_ij - m_i)) v_j / l_i, the usual flash-attention forward,
// instead of sum_j bf16(exp(s_ij - lse_i)) v_j. The two differ by bfloat16 rounding of P only, and
// this one reads each key tile once. K and V tiles are double-buffered: the next tile's copies
// run while this one is multiplied.
template <int HS>
__global__ void __launch_bounds__(kThreadsTc)
    forward_online_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                          Geo g) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem);
  // Buffer i: K at tile 1 + 2i, V at 2 + 2i (computed, not indexed: no local-memory arrays).
  auto ks = [&](int i) { return qs + (1 + 2 * i) * kTileElems<HS>; };
  auto vs = [&](int i) { return qs + (2 + 2 * i) * kTileElems<HS>; };
  const int qt = int(gridDim.x) - 1 - int(blockIdx.x);  // the longest rows first
  const int64_t bh = blockIdx.y, b = bh / g.nh, h = bh % g.nh, kvh = h / g.group;
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
  const int64_t q_stride = g.nh * HS, kv_stride = g.nkv * HS;
  const bf16* kb = k + (b * g.t * g.nkv + kvh) * HS;
  const bf16* vb = v + (b * g.t * g.nkv + kvh) * HS;
  const int64_t q0 = int64_t(qt) * kTile;
  const int64_t row[2] = {q0 + warp * 16 + (lane >> 2), q0 + warp * 16 + (lane >> 2) + 8};
  load_tile<HS>(qs, q + (b * g.t * g.nh + h) * HS, q_stride, q0, g.t);
  load_tile<HS>(ks(0), kb, kv_stride, 0, g.t);
  load_tile<HS>(vs(0), vb, kv_stride, 0, g.t);
  cp_async_commit();

  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[HS / 8][4] = {};
  uint32_t qf[HS / 16][4];
  for (int kt = 0; kt <= qt; ++kt) {
    const int64_t k0 = int64_t(kt) * kTile;
    const int buf = kt & 1;
    if (kt < qt) {
      load_tile<HS>(ks(buf ^ 1), kb, kv_stride, k0 + kTile, g.t);
      load_tile<HS>(vs(buf ^ 1), vb, kv_stride, k0 + kTile, g.t);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (kt == 0) load_a<HS>(qf, qs + warp * 16 * kLd<HS>);
    float s[8][4];
    product_abt<HS>(s, qf, ks(buf));
    if (kt == qt) mask_above_diagonal(s);
    online_softmax_step(s, m, l, g.scale_log2, [&](int rr, float correction) {
#pragma unroll
      for (int d = 0; d < HS / 8; ++d) {
        o[d][2 * rr] *= correction;
        o[d][2 * rr + 1] *= correction;
      }
    });
    product_xb<HS>(o, s, vs(buf));
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

Geo geo(const AttnDims& d) {
  const float scale = 1.0f / sqrtf(float(d.hs));
  return {d.t, d.nh, d.nkv, d.nh / d.nkv, scale, scale * kLog2e};
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
  }
  return true;
}

bool flash_attention_forward(void* out, float* lse, const void* q, const void* k, const void* v,
                             const AttnDims& d, const TileCast& p_cast, bool round_p,
                             cudaStream_t s, const PvForDelta& pv) {
  const Geo g = geo(d);
  const DevCast pc = dev_cast(p_cast);
  const dim3 grid(unsigned((d.t + kTile - 1) / kTile), unsigned(d.b * d.nh));
  const auto* qb = static_cast<const bf16*>(q);
  const auto* kb = static_cast<const bf16*>(k);
  const auto* vb = static_cast<const bf16*>(v);
  const bool with_pv = p_cast.kind == TileCast::Kind::kMx && pv.pv != nullptr && pv.v_dw != nullptr;
  with_head_size(d.hs, [&]<int HS>() {
    if (p_cast.kind != TileCast::Kind::kMx) {
      const size_t shared = 5 * kTileElems<HS> * sizeof(bf16);
      allow_shared(forward_online_kernel<HS>, shared);
      forward_online_kernel<HS>
          <<<grid, kThreadsTc, shared, s>>>(static_cast<bf16*>(out), lse, qb, kb, vb, g);
      return;
    }
    auto launch = [&]<bool kPv, QuadEncoder kEnc>() {
      const size_t shared = forward_shared_bytes<HS, kPv>();
      allow_shared(forward_kernel<HS, kPv, kEnc>, shared);
      forward_kernel<HS, kPv, kEnc><<<grid, kThreadsTc, shared, s>>>(
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
  });
  return with_pv;
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
