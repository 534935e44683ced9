// The tiles of the tensor-core attention kernels (flash_forward_kernels.cuh, the forward;
// flash_backward_kernels.cuh, dQ and dK/dV) and their mma.sync tile products (MmaTiles; the
// warpgroup ones are sm90a/wgmma_tiles.cuh's). Layouts as in attention.cu: q [B, T, nh, hs], k
// and v [B, T, nkv, hs], lse and delta [B, nh, T].
//
// A block of 128 threads owns a tile of 64 rows (queries, or keys for dK/dV); each warp owns 16
// of them and sweeps 64 columns at a time (the backward kernels 32 at a time within each tile:
// half the registers for P and dS, which lets more blocks share an SM). Products are m16n8k16
// bfloat16 mma.sync with float32 accumulators; their operands come from shared memory through
// ldmatrix, except P and dS, which stay in registers: an m16n8 accumulator row is spread over the
// four lanes of a quad, and 32 consecutive columns of it (four n-tiles) are one MX block of the
// cast along that axis, so the casts run in registers (tile_cast.cuh, cast_quad). Kernels for
// casts without MX (QuadEncoder::kNoMx) hold none of the MX encoders' code or registers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>

#include "mx/kernels/cuda/mma_sync.cuh"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/cuda/tile_cast.cuh"

namespace mx::nn::cuda::flash {

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
// at or past t are zeros (so that a product with them gives zeros, never NaN). Each thread copies
// one column of 16-byte pieces, every kRowStep-th row: one 64-bit address to step, and a test of
// each row only in a tile that crosses t (the loads, mostly each piece's 64-bit index
// arithmetic, were 28% of the MX forward's executed instructions).
template <int HS>
__device__ __forceinline__ void load_tile(bf16* dst, const bf16* src, int64_t stride, int64_t row0,
                                          int64_t t) {
  constexpr int kChunks = HS / 8;  // 16-byte pieces per row
  static_assert(kThreadsTc % kChunks == 0 && kTile % (kThreadsTc / kChunks) == 0);
  constexpr int kRowStep = kThreadsTc / kChunks;
  const int r = int(threadIdx.x) / kChunks, col = (int(threadIdx.x) % kChunks) * 8;
  bf16* d = dst + r * kLd<HS> + col;
  const bf16* s = src + (row0 + r) * stride + col;
  const int64_t step = kRowStep * stride;
  const bool whole = row0 + kTile <= t;
#pragma unroll
  for (int i = 0; i < kTile / kRowStep; ++i) {
    if (whole || row0 + r + i * kRowStep < t) {
      cp_async16(d + i * kRowStep * kLd<HS>, s);
    } else {
      *reinterpret_cast<uint4*>(d + i * kRowStep * kLd<HS>) = make_uint4(0, 0, 0, 0);
    }
    s += step;
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

// The column sums of the block's [64 x HS] result as store_rows rounds it to bfloat16 (rows at or
// past t count zero), at sums[0, HS). The order is fixed: each thread's two rows, the eight row
// groups of a warp by a shuffle tree, then the four warps in order. `scratch` is kThreadsTc / 32
// x HS floats of shared memory that no thread uses any more; sums is the same for the whole
// block, which this synchronizes.
template <int HS>
__device__ __forceinline__ void store_column_sums(float* sums, float* scratch,
                                                  const int64_t (&row)[2], int64_t t,
                                                  const float (&x)[HS / 8][4]) {
  const int warp = int(threadIdx.x >> 5), lane = int(threadIdx.x & 31);
#pragma unroll
  for (int n = 0; n < HS / 8; ++n) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float v =
          (row[0] < t ? bf16_round(x[n][e]) : 0.0f) + (row[1] < t ? bf16_round(x[n][2 + e]) : 0.0f);
#pragma unroll
      for (int offset = 4; offset < 32; offset *= 2) v += __shfl_xor_sync(kFullWarp, v, offset);
      if (lane < 4) scratch[warp * HS + col_of(n, e)] = v;
    }
  }
  __syncthreads();
  for (int c = int(threadIdx.x); c < HS; c += kThreadsTc) {
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kThreadsTc / 32; ++w) total += scratch[w * HS + c];
    sums[c] = total;
  }
}

// The tile products of the kernels' sm_90 build (flash_forward_kernels.cuh and
// flash_backward_kernels.cuh take them as a parameter; sm90a/wgmma_tiles.cuh has the other):
// each warp multiplies its own 16 rows by mma.sync, its operands read from padded tiles in
// shared memory through ldmatrix.
struct MmaTiles {
  // A warp may skip columns that the causal mask zeroes for all of its rows.
  static constexpr bool kPerWarp = true;
  template <int HS>
  static constexpr size_t kTileBytes = size_t(kTileElems<HS>) * sizeof(bf16);
  static constexpr size_t kAlignSlack = 0;  // shared memory beyond the tiles, to align them
  __device__ static unsigned char* tiles(unsigned char* smem) { return smem; }
  template <int HS>
  __device__ static void load(unsigned char* dst, const bf16* src, int64_t stride, int64_t row0,
                              int64_t t) {
    load_tile<HS>(reinterpret_cast<bf16*>(dst), src, stride, row0, t);
  }
  // After cp_async_wait: every thread's copies are visible.
  __device__ static void ready() { __syncthreads(); }
  // The left operand of the A B^T products: the warp's 16 rows of a tile, in registers.
  template <int HS>
  struct A {
    uint32_t f[HS / 16][4];
    __device__ void load(const unsigned char* tile) {
      load_a<HS>(f, reinterpret_cast<const bf16*>(tile) + int(threadIdx.x >> 5) * 16 * kLd<HS>);
    }
  };
  // acc = A B^T with B rows [row0, row0 + 8N) of a tile.
  template <int HS, int N>
  __device__ static void abt(float (&acc)[N][4], const A<HS>& a, const unsigned char* b,
                             int row0 = 0) {
    product_abt<HS, N>(acc, a.f, reinterpret_cast<const bf16*>(b) + row0 * kLd<HS>);
  }
  template <int HS, int N>
  __device__ static void abt2(float (&acc1)[N][4], const A<HS>& a1, const unsigned char* b1,
                              float (&acc2)[N][4], const A<HS>& a2, const unsigned char* b2,
                              int row0) {
    abt<HS, N>(acc1, a1, b1, row0);
    abt<HS, N>(acc2, a2, b2, row0);
  }
  // The same with A read from its tile for this product alone (its fragments live no longer).
  template <int HS, int N>
  __device__ static void abt(float (&acc)[N][4], const unsigned char* a, const unsigned char* b,
                             int row0 = 0) {
    A<HS> fragments;
    fragments.load(a);
    abt<HS, N>(acc, fragments, b, row0);
  }
  template <int HS, int N>
  __device__ static void abt2(float (&acc1)[N][4], const unsigned char* a1, const unsigned char* b1,
                              float (&acc2)[N][4], const unsigned char* a2, const unsigned char* b2,
                              int row0) {
    abt<HS, N>(acc1, a1, b1, row0);
    abt<HS, N>(acc2, a2, b2, row0);
  }
  // out += X B, X an accumulator tile (rounded to bfloat16), B rows [row0, row0 + 8N) of a tile.
  template <int HS, int N>
  __device__ static void xb(float (&out)[HS / 8][4], const float (&x)[N][4], const unsigned char* b,
                            int row0 = 0) {
    product_xb<HS, N>(out, x, reinterpret_cast<const bf16*>(b) + row0 * kLd<HS>);
  }
  template <int HS, int N>
  __device__ static void xb2(float (&out1)[HS / 8][4], const float (&x1)[N][4],
                             const unsigned char* b1, float (&out2)[HS / 8][4],
                             const float (&x2)[N][4], const unsigned char* b2, int row0) {
    xb<HS, N>(out1, x1, b1, row0);
    xb<HS, N>(out2, x2, b2, row0);
  }
};

inline Geo geo(const AttnDims& d) {
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

}  // namespace mx::nn::cuda::flash
