// Dual quantize: one read of a [M, K] matrix writes its 1 x 32 row blocks and its 32 x 1 column
// blocks. The general kernel takes any format and alignment; the fast one codes of 4, 6 or 8 bits
// into 16-byte aligned buffers. See NOTES.md.
#include "mx/kernels/cuda/dual_kernels.cuh"

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/chunk_codec.cuh"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

// Dual: a CTA of 256 threads reads a 32 x 64 tile once into shared memory; each thread then
// quantizes one chunk of 8 of a row block (1x32 along K) and one chunk of a column block (32x1
// along M), 4 lanes per block.
constexpr int kDualThreads = 256;

template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(kDualThreads) dual_kernel(__grid_constant__ const DualParams P) {
  __shared__ float tile[kDualRows][kDualCols + 1];
  const int64_t R0 = int64_t(blockIdx.y) * kDualRows;
  const int64_t C0 = int64_t(blockIdx.x) * kDualCols;
  const int t = threadIdx.x;
  const bool full = R0 + kDualRows <= P.M && C0 + kDualCols <= P.K;
  if (full && P.in_dtype != int(DType::kF32) && P.K % 8 == 0 &&
      (reinterpret_cast<uintptr_t>(P.in) & 15) == 0) {
    // 32 rows x 8 chunks of 8 16-bit values: one 16-byte load per thread.
    const int r = t / 8, q = t % 8;
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.in) +
                                                         (R0 + r) * P.K + C0 + q * 8));
    const uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint16_t h0 = uint16_t(w[i]), h1 = uint16_t(w[i] >> 16);
      const bool bf = P.in_dtype == int(DType::kBF16);
      tile[r][q * 8 + 2 * i] = bf ? bf16_bits_to_f32(h0) : fp16_bits_to_f32(h0);
      tile[r][q * 8 + 2 * i + 1] = bf ? bf16_bits_to_f32(h1) : fp16_bits_to_f32(h1);
    }
  } else {
    for (int e = t; e < kDualRows * kDualCols; e += kDualThreads) {
      const int r = e / kDualCols, c = e % kDualCols;
      const int64_t row = R0 + r, col = C0 + c;
      tile[r][c] = row < P.M && col < P.K ? load_value(P.in, P.in_dtype, row * P.K + col) : 0.0f;
    }
  }
  __syncthreads();
  const DevSpec& s = P.s;
  const int lane = t % 4, task = t / 4;  // 64 blocks per direction, 4 lanes each
  {
    // Row block: tile row task / 2, columns (task % 2) * 32 + [0, 32).
    const int r = task / 2, c0 = (task % 2) * 32 + lane * 8;
    const int64_t row = R0 + r;
    const bool active = row < P.M && C0 + (task % 2) * 32 < P.K;
    float v[8];
    uint32_t mask = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = tile[r][c0 + i];
      mask |= (row < P.M && C0 + c0 + i < P.K ? 1u : 0u) << i;
    }
    BlockState st;
    uint32_t code[8];
    const uint64_t packed = lane_encode<kMode, kInteger>(
        s, v, mask, 4, [&](int i) { return row * P.K + C0 + c0 + i; }, st, code);
    if (active) {
      const int64_t b = row * P.row_blocks_per_row + (C0 / 32 + task % 2);
      if (lane == 0) {
        P.rows.scales[b] = st.scale;
        if (s.asym) P.rows.offsets[b] = st.offset;
      }
      store_packed(P.rows.elements + b * 4 * s.f.bits + lane * s.f.bits, s.f.bits, packed);
    }
  }
  {
    // Column block: tile column task, rows lane * 8 + [0, 8).
    const int c = task, r0 = lane * 8;
    const int64_t col = C0 + c;
    const bool active = col < P.K;
    float v[8];
    uint32_t mask = 0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      v[i] = tile[r0 + i][c];
      mask |= (R0 + r0 + i < P.M && col < P.K ? 1u : 0u) << i;
    }
    BlockState st;
    uint32_t code[8];
    const uint64_t packed = lane_encode<kMode, kInteger>(
        s, v, mask, 4, [&](int i) { return (R0 + r0 + i) * P.K + col; }, st, code);
    if (active) {
      const int64_t b = (R0 / 32) * P.K + col;
      if (lane == 0) {
        P.cols.scales[b] = st.scale;
        if (s.asym) P.cols.offsets[b] = st.offset;
      }
      store_packed(P.cols.elements + b * 4 * s.f.bits + lane * s.f.bits, s.f.bits, packed);
    }
  }
}

template <Rounding M, bool I>
struct LaunchDual {
  static void run(const DualParams& P, dim3 grid, cudaStream_t stream) {
    dual_kernel<M, I><<<grid, kDualThreads, 0, stream>>>(P);
  }
};

// Dual, fast path (codes of 4, 6 or 8 bits, 16-byte aligned code buffers): a CTA of 128 threads
// stages a 32 x 128 tile of [M, K] in shared memory as float32, then each thread quantizes one
// whole row block (32 values along K) and one whole column block (32 values along M) with the
// same encoder as quantize_vec. Row blocks: lane = 4 * row + block, so the 4 lanes of a row write
// its 4 neighbouring blocks. Tile element (r, c) sits at r * 144 + c + 4 * (c / 32): the 16-byte
// row reads of a warp (two rows x four blocks) and the column reads (32 consecutive columns) are
// free of bank conflicts.
constexpr int kDualVecThreads = 128, kDualVecPitch = 144;

__device__ __forceinline__ int dual_at(int r, int c) {
  return r * kDualVecPitch + c + 4 * (c >> 5);
}

template <Rounding kMode, bool kInteger, int kBits>
__global__ void __launch_bounds__(kDualVecThreads)
    dual_vec_kernel(__grid_constant__ const DualParams P, int vec_loads) {
  constexpr int N = kBits == 6 ? 1 : kBits / 4;  // 16-byte vectors of codes per block
  __shared__ __align__(16) float tile[32 * kDualVecPitch];
  __shared__ uint4 stage_all[kDualVecThreads / 32 * 32 * (N + 1)];
  const int64_t R0 = int64_t(blockIdx.y) * 32;
  const int64_t C0 = int64_t(blockIdx.x) * kDualVecCols;
  const int t = threadIdx.x;
  uint4* stage = stage_all + (t >> 5) * (32 * (N + 1));
  const bool full = R0 + 32 <= P.M && C0 + kDualVecCols <= P.K;
  if (full && vec_loads && P.in_dtype != int(DType::kF32)) {
    // 32 rows x 16 chunks of 8 16-bit values: four 16-byte loads per thread.
    uint4 x[4];
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = q * kDualVecThreads + t, r = e >> 4, c8 = e & 15;
      x[q] = __ldg(reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.in) +
                                                  (R0 + r) * P.K + C0 + c8 * 8));
    }
    const bool bf = P.in_dtype == int(DType::kBF16);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int e = q * kDualVecThreads + t, r = e >> 4, c8 = e & 15;
      const uint32_t w[4] = {x[q].x, x[q].y, x[q].z, x[q].w};
      float f[8];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        f[2 * i] = bf ? __uint_as_float(w[i] << 16) : fp16_bits_to_f32(uint16_t(w[i]));
        f[2 * i + 1] =
            bf ? __uint_as_float(w[i] & 0xFFFF0000u) : fp16_bits_to_f32(uint16_t(w[i] >> 16));
      }
      float4* dst = reinterpret_cast<float4*>(&tile[dual_at(r, c8 * 8)]);
      dst[0] = make_float4(f[0], f[1], f[2], f[3]);
      dst[1] = make_float4(f[4], f[5], f[6], f[7]);
    }
  } else if (full && vec_loads) {
    // float32: 32 rows x 32 chunks of 4 values, eight 16-byte loads per thread.
    float4 x[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const int e = q * kDualVecThreads + t, r = e >> 5, c4 = e & 31;
      x[q] = __ldg(reinterpret_cast<const float4*>(static_cast<const float*>(P.in) +
                                                   (R0 + r) * P.K + C0 + c4 * 4));
    }
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const int e = q * kDualVecThreads + t, r = e >> 5, c4 = e & 31;
      *reinterpret_cast<float4*>(&tile[dual_at(r, c4 * 4)]) = x[q];
    }
  } else {
    for (int e = t; e < 32 * kDualVecCols; e += kDualVecThreads) {
      const int r = e / kDualVecCols, c = e % kDualVecCols;
      const int64_t row = R0 + r, col = C0 + c;
      tile[dual_at(r, c)] =
          row < P.M && col < P.K ? load_value(P.in, P.in_dtype, row * P.K + col) : 0.0f;
    }
  }
  __syncthreads();
  const DevSpec& s = P.s;
  {
    // Row block `cb` of tile row r.
    const int lane = t & 31, r = (t >> 5) * 8 + (lane >> 2), cb = lane & 3;
    const int64_t row = R0 + r, col0 = C0 + cb * 32;
    const int64_t left = row < P.M ? P.K - col0 : 0;
    // Whole: every lane of the warp has a full block (its 8 rows exist, the tile spans 128
    // columns and K holds whole blocks of 32).
    const bool whole = R0 + (t >> 5) * 8 + 8 <= P.M && C0 + kDualVecCols <= P.K;
    if (left > 0) {
      const uint32_t mask = left >= 32 ? 0xFFFFFFFFu : (1u << left) - 1u;
      float v[32];
      const float4* src = reinterpret_cast<const float4*>(&tile[dual_at(r, cb * 32)]);
#pragma unroll
      for (int q = 0; q < 8; ++q) {
        const float4 a = src[q];
        v[4 * q] = a.x, v[4 * q + 1] = a.y, v[4 * q + 2] = a.z, v[4 * q + 3] = a.w;
      }
      const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
      const int64_t b = row * P.row_blocks_per_row + (col0 >> 5);
      P.rows.scales[b] = st.scale;
      if (s.asym) P.rows.offsets[b] = st.offset;
      uint32_t words[kBits];
      packed_codes32<kMode, kInteger, kBits>(s, st, v, mask, StridedDraws(s, row * P.K + col0, 1),
                                             words);
      if constexpr (kBits == 6) {
        store_codes6(P.rows.elements + b * 24, words);
      } else {
        uint4 x[N];
        code_vectors<kBits>(words, x);
        store_group<N>(reinterpret_cast<uint4*>(P.rows.elements + b * (4 * kBits)), x, 4,
                       whole && P.K % 32 == 0, stage);
      }
    }
  }
  {
    // Column block: tile column t, rows [0, 32).
    const int64_t col = C0 + t;
    const int64_t down = P.M - R0;
    const bool whole = C0 + (t | 31) < P.K;
    if (col < P.K) {
      const uint32_t mask = down >= 32 ? 0xFFFFFFFFu : (1u << down) - 1u;
      float v[32];
#pragma unroll
      for (int j = 0; j < 32; ++j) v[j] = tile[dual_at(j, t)];
      const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
      const int64_t b = (R0 >> 5) * P.K + col;
      P.cols.scales[b] = st.scale;
      if (s.asym) P.cols.offsets[b] = st.offset;
      uint32_t words[kBits];
      packed_codes32<kMode, kInteger, kBits>(s, st, v, mask, StridedDraws(s, R0 * P.K + col, P.K),
                                             words);
      if constexpr (kBits == 6) {
        store_codes6(P.cols.elements + b * 24, words);
      } else {
        uint4 x[N];
        code_vectors<kBits>(words, x);
        store_group<N>(reinterpret_cast<uint4*>(P.cols.elements + b * (4 * kBits)), x, 32, whole,
                       stage);
      }
    }
  }
}

template <Rounding M, bool I, int kBits>
struct LaunchDualVecBits {
  static void run(const DualParams& P, dim3 grid, int vec_loads, cudaStream_t stream) {
    dual_vec_kernel<M, I, kBits><<<grid, kDualVecThreads, 0, stream>>>(P, vec_loads);
  }
};
template <Rounding M, bool I>
struct LaunchDualVec8 : LaunchDualVecBits<M, I, 8> {};
template <Rounding M, bool I>
struct LaunchDualVec6 : LaunchDualVecBits<M, I, 6> {};
template <Rounding M, bool I>
struct LaunchDualVec4 : LaunchDualVecBits<M, I, 4> {};

}  // namespace

void launch_dual(const DualParams& P, Rounding mode, bool integer, dim3 grid, cudaStream_t stream) {
  dispatch<LaunchDual>(mode, integer, P, grid, stream);
}

void launch_dual_vec(const DualParams& P, Rounding mode, bool integer, int code_bits, dim3 grid,
                     int vec_loads, cudaStream_t stream) {
  if (code_bits == 8) {
    dispatch<LaunchDualVec8>(mode, integer, P, grid, vec_loads, stream);
  } else if (code_bits == 6) {
    dispatch<LaunchDualVec6>(mode, integer, P, grid, vec_loads, stream);
  } else {
    dispatch<LaunchDualVec4>(mode, integer, P, grid, vec_loads, stream);
  }
}

}  // namespace mx::cuda
