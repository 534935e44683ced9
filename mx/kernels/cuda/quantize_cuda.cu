// CUDA port of the CPU fast path (mx/kernels/cpu/block_codec_impl.h): same integer recipe for
// the shared exponent and the element encoder, y = v * 2^-e as one IEEE float32 multiply
// (__fmul_rn; built with -ftz=false so 2^-127 stays a subnormal). See NOTES.md.
#include "mx/kernels/cuda/quantize_cuda.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <numeric>

#include "mx/core/block_grid.h"
#include "mx/core/element_ref.h"
#include "mx/core/format.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/chunk_codec.cuh"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/dual_bf16_e2m1.cuh"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

// ------------------------------------------------------------------------------------------
// Kernels.

// One thread per group of P.group consecutive blocks (one, unless a block's codes do not fill
// whole bytes: then as many as bring the group to a byte boundary, at most 8).
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256) quantize_kernel(__grid_constant__ const QuantParams P) {
  const int64_t first = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * P.group;
  if (first >= P.g.num_blocks) return;
  const int k = P.g.k;
  const int64_t last = min(first + P.group, P.g.num_blocks);
  CodeDst codes(P.elements, P.scales, P.offsets, first, k, P.s.f.bits, P.s.asym);
  for (int64_t b = first; b < last; ++b) {
    codes.block = b;
    if (P.g.contiguous) {
      const int64_t run = b / P.g.blocks_per_run;
      const int64_t j = b % P.g.blocks_per_run;
      RunSrc src{P.in, P.in_dtype, run * P.g.run_len + j * k,
                 int(min(int64_t(k), P.g.run_len - j * k))};
      if (P.fake_out) {
        FakeDst<RunSrc> dst{P.fake_out, P.fake_dtype, &src};
        quantize_block<kMode, kInteger>(P.s, k, src, dst);
      } else {
        quantize_block<kMode, kInteger>(P.s, k, src, codes);
      }
    } else {
      GridSrc src(P.in, P.in_dtype, &P.g, b);
      if (P.fake_out) {
        FakeDst<GridSrc> dst{P.fake_out, P.fake_dtype, &src};
        quantize_block<kMode, kInteger>(P.s, k, src, dst);
      } else {
        quantize_block<kMode, kInteger>(P.s, k, src, codes);
      }
    }
  }
  if (!P.fake_out) codes.flush();
}

// Fast path for blocks that are contiguous runs with k = 8 * G, G a power of two <= 32: G
// threads per block, one chunk of 8 values each held in registers (one read of the input).
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256)
    quantize_lanes_kernel(__grid_constant__ const QuantParams P, int log2g) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int G = 1 << log2g;
  const int64_t b = t >> log2g;
  const int c = int(t & (G - 1));
  const bool active = b < P.g.num_blocks;
  const int k = P.g.k;
  const DevSpec& s = P.s;
  const int64_t run = active ? b / P.g.blocks_per_run : 0;
  const int64_t j = active ? b % P.g.blocks_per_run : 0;
  const RunSrc src{P.in, P.in_dtype, run * P.g.run_len + j * k,
                   active ? int(min(int64_t(k), P.g.run_len - j * k)) : 0};
  float v[8];
  const uint32_t mask = src.load(c, v);
  BlockState st;
  uint32_t code[8];
  const uint64_t packed = lane_encode<kMode, kInteger>(
      s, v, mask, G, [&](int i) { return src.index(c * 8 + i); }, st, code);
  if (!active) return;
  if (P.fake_out == nullptr) {
    if (c == 0) {
      P.scales[b] = st.scale;
      if (s.asym) P.offsets[b] = st.offset;
    }
    store_packed(P.elements + b * int64_t(k) * s.f.bits / 8 + int64_t(c) * s.f.bits, s.f.bits,
                 packed);
    return;
  }
  float d[8];
  const float x = e8m0_value(st.scale);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    float r = st.nan_block ? __uint_as_float(kNanF32) : __fmul_rn(s.f.decode[code[i]], x);
    if (s.asym && !st.nan_block) r = __fadd_rn(r, st.m);
    d[i] = r;
  }
  FakeDst<RunSrc> dst{P.fake_out, P.fake_dtype, &src};
  dst.value(c, src.real_mask(c), d);
}

// 32 bfloat16 or float16 values (four 16-byte vectors) to float32; returns their amax bits.
__device__ __forceinline__ uint32_t unpack16(int dtype, const uint4 x[4], float v[32]) {
  uint32_t w[16];
#pragma unroll
  for (int q = 0; q < 4; ++q)
    w[4 * q] = x[q].x, w[4 * q + 1] = x[q].y, w[4 * q + 2] = x[q].z, w[4 * q + 3] = x[q].w;
  if (dtype == int(DType::kBF16)) {
    uint32_t m2 = 0;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      m2 = vmax_u16x2(m2, w[j] & 0x7FFF7FFFu);
      v[2 * j] = __uint_as_float(w[j] << 16);
      v[2 * j + 1] = __uint_as_float(w[j] & 0xFFFF0000u);
    }
    return max(m2 >> 16, m2 & 0xFFFFu) << 16;
  }
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    v[2 * j] = fp16_bits_to_f32(uint16_t(w[j]));
    v[2 * j + 1] = fp16_bits_to_f32(uint16_t(w[j] >> 16));
  }
  uint32_t amax = 0;
#pragma unroll
  for (int j = 0; j < 32; ++j) amax = max(amax, __float_as_uint(v[j]) & 0x7FFFFFFFu);
  return amax;
}

// Loads 32 consecutive values starting at element i0 (16-byte aligned) and returns their amax
// bits (NaN and Inf compare above every finite value).
__device__ __forceinline__ uint32_t load32(const void* in, int dtype, int64_t i0, float v[32]) {
  if (dtype == int(DType::kF32)) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(in) + i0);
    float4 x[8];
#pragma unroll
    for (int q = 0; q < 8; ++q) x[q] = __ldg(p + q);
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      v[4 * q] = x[q].x, v[4 * q + 1] = x[q].y, v[4 * q + 2] = x[q].z, v[4 * q + 3] = x[q].w;
    }
    uint32_t amax = 0;
#pragma unroll
    for (int j = 0; j < 32; ++j) amax = max(amax, __float_as_uint(v[j]) & 0x7FFFFFFFu);
    return amax;
  }
  const uint4* p = reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(in) + i0);
  uint4 x[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) x[q] = __ldg(p + q);
  return unpack16(dtype, x, v);
}

// 32 bfloat16 values kept as 16 packed pairs (half the registers of 32 floats); v[j] widens
// value j on the fly.
struct Bf16Pairs {
  uint32_t w[16];
  __device__ __forceinline__ float operator[](int j) const {
    return __uint_as_float((j & 1) ? w[j >> 1] & 0xFFFF0000u : w[j >> 1] << 16);
  }
};

// One thread's 32 values, chunk t, already loaded into v. Past the end (`active` false) the
// thread still takes part in its group's shuffles, then writes nothing.
template <Rounding kMode, bool kInteger, int kBits>
__device__ __forceinline__ void vec_chunk(const QuantParams& P, int log2g, int64_t t, bool active,
                                          bool whole, float v[32], uint32_t amax,
                                          uint4* stage_all) {
  const DevSpec& s = P.s;
  const BlockState st = scale32(s, v, amax, 0xFFFFFFFFu, 1 << log2g);
  if (!active) return;
  const int64_t i0 = t * 32;
  const PairedDraws draws(s, i0);
  if (P.fake_out != nullptr) {
    if (!st.nan_block) values32<kMode, kInteger>(s, st, v, draws);
    if (P.fake_dtype == int(DType::kF32)) {
      uint4 x[8];
      fake_vectors_f32(v, st.nan_block, x);
      store_group<8>(reinterpret_cast<uint4*>(static_cast<float*>(P.fake_out) + i0), x, 32, whole,
                     stage_all + (threadIdx.x >> 5) * (32 * 9));
    } else {
      uint4 x[4];
      fake_vectors_bf16(v, st.nan_block, x);
      store_group<4>(reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.fake_out) + i0), x, 32,
                     whole, stage_all + (threadIdx.x >> 5) * (32 * 5));
    }
    return;
  }
  const int64_t b = t >> log2g;
  if ((t & ((int64_t(1) << log2g) - 1)) == 0) {
    P.scales[b] = st.scale;
    if (s.asym) P.offsets[b] = st.offset;
  }
  uint32_t words[kBits];
  codes32<kMode, kInteger, kBits>(s, st, v, 0xFFFFFFFFu, draws, words);
  uint4 x[kBits / 4];
  code_vectors<kBits>(words, x);
  store_group<kBits / 4>(reinterpret_cast<uint4*>(P.elements + t * (4 * kBits)), x, 32, whole,
                         stage_all + (threadIdx.x >> 5) * (32 * (kBits / 4 + 1)));
}

// Dense contiguous blocks (the blocks tile the flat tensor: runs are whole blocks) with k = 32 *
// G, G a power of two <= 8, codes of 4 or 8 bits, 16-byte aligned buffers: each thread loads 32
// values with 16-byte loads, the G threads of a block reduce amax with shuffles, and each thread
// stores its 16 or 32 bytes of codes (or 64/128 bytes of fake-quantized values). (A striding
// variant that prefetched the next chunk during the encode needed 80-105 registers and ran
// slower on an H100 for every format and rounding.)
template <Rounding kMode, bool kInteger, int kBits>
__global__ void __launch_bounds__(256)
    quantize_vec_kernel(__grid_constant__ const QuantParams P, int log2g) {
  extern __shared__ uint4 stage_all[];
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunks = P.g.num_blocks << log2g;
  const bool active = t < chunks;
  const bool whole = (t | 31) < chunks;  // every lane of this warp is active
  float v[32];
  const uint32_t amax = load32(P.in, P.in_dtype, (active ? t : 0) * 32, v);
  vec_chunk<kMode, kInteger, kBits>(P, log2g, t, active, whole, v, amax, stage_all);
}

template <Rounding kMode, bool kInteger, int kBits>
struct LaunchVec {
  static void run(const QuantParams& P, int log2g, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = ((P.g.num_blocks << log2g) + threads - 1) / threads;
    const int n = P.fake_out == nullptr ? kBits / 4 : P.fake_dtype == int(DType::kF32) ? 8 : 4;
    quantize_vec_kernel<kMode, kInteger, kBits>
        <<<unsigned(grid), threads, stage_bytes(threads, n), stream>>>(P, log2g);
  }
};
// Stochastic quantize of bfloat16 input to 4-bit codes without an offset or subnormal flushing:
// the blocks of quantize_vec_kernel, with the 32 values kept as packed pairs until the encoder
// reads them. Sixteen fewer registers let five 256-thread blocks share an SM instead of four, and
// the longer stochastic encode needs those warps to keep memory busy.
template <bool kInteger>
__global__ void __launch_bounds__(256, 5)
    quantize_vec_bf16_stochastic_kernel(__grid_constant__ const QuantParams P, int log2g) {
  extern __shared__ uint4 stage_all[];
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunks = P.g.num_blocks << log2g;
  const bool active = t < chunks;
  const bool whole = (t | 31) < chunks;
  const DevSpec& s = P.s;
  const uint4* p =
      reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(P.in) + (active ? t : 0) * 32);
  Bf16Pairs v;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    const uint4 x = __ldg(p + q);
    v.w[4 * q] = x.x, v.w[4 * q + 1] = x.y, v.w[4 * q + 2] = x.z, v.w[4 * q + 3] = x.w;
  }
  uint32_t m2 = 0;
#pragma unroll
  for (int j = 0; j < 16; ++j) m2 = vmax_u16x2(m2, v.w[j] & 0x7FFF7FFFu);
  uint32_t amax = max(m2 >> 16, m2 & 0xFFFFu) << 16;
  for (int o = 1; o < (1 << log2g); o <<= 1) {
    amax = max(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  }
  BlockState st{};
  st.nan_block = amax >= 0x7F800000u;
  st.m = 0.0f;
  finish_scale(s, amax, st);
  if (!active) return;
  const int64_t b = t >> log2g;
  if ((t & ((int64_t(1) << log2g) - 1)) == 0) P.scales[b] = st.scale;
  uint32_t words[4];
  codes32<Rounding::kStochastic, kInteger, 4>(s, st, v, 0xFFFFFFFFu, PairedDraws(s, t * 32), words);
  uint4 x[1];
  code_vectors<4>(words, x);
  store_group<1>(reinterpret_cast<uint4*>(P.elements) + t, x, 32, whole, stage_all);
}

template <bool kInteger>
void launch_vec_bf16_stochastic(const QuantParams& P, int log2g, cudaStream_t stream) {
  const int threads = 256;
  const int64_t grid = ((P.g.num_blocks << log2g) + threads - 1) / threads;
  quantize_vec_bf16_stochastic_kernel<kInteger>
      <<<unsigned(grid), threads, stage_bytes(threads, 1), stream>>>(P, log2g);
}

template <Rounding M, bool I>
struct LaunchVec8 : LaunchVec<M, I, 8> {};
template <Rounding M, bool I>
struct LaunchVec4 : LaunchVec<M, I, 4> {};

// Dual: a CTA of 256 threads reads a 32 x 64 tile once into shared memory; each thread then
// quantizes one chunk of 8 of a row block (1x32 along K) and one chunk of a column block (32x1
// along M), 4 lanes per block.
constexpr int kDualRows = 32, kDualCols = 64, kDualThreads = 256;

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

// Dual, fast path (codes of 4 or 8 bits, 16-byte aligned code buffers): a CTA of 128 threads
// stages a 32 x 128 tile of [M, K] in shared memory as float32, then each thread quantizes one
// whole row block (32 values along K) and one whole column block (32 values along M) with the
// same encoder as quantize_vec. Row blocks: lane = 4 * row + block, so the 4 lanes of a row write
// its 4 neighbouring blocks. Tile element (r, c) sits at r * 144 + c + 4 * (c / 32): the 16-byte
// row reads of a warp (two rows x four blocks) and the column reads (32 consecutive columns) are
// free of bank conflicts.
constexpr int kDualVecCols = 128, kDualVecThreads = 128, kDualVecPitch = 144;

__device__ __forceinline__ int dual_at(int r, int c) {
  return r * kDualVecPitch + c + 4 * (c >> 5);
}

template <Rounding kMode, bool kInteger, int kBits>
__global__ void __launch_bounds__(kDualVecThreads)
    dual_vec_kernel(__grid_constant__ const DualParams P, int vec_loads) {
  constexpr int N = kBits / 4;  // 16-byte vectors of codes per block
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
      codes32<kMode, kInteger, kBits>(s, st, v, mask, StridedDraws(s.key, row * P.K + col0, 1),
                                      words);
      uint4 x[N];
      code_vectors<kBits>(words, x);
      store_group<N>(reinterpret_cast<uint4*>(P.rows.elements + b * (4 * kBits)), x, 4,
                     whole && P.K % 32 == 0, stage);
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
      codes32<kMode, kInteger, kBits>(s, st, v, mask, StridedDraws(s.key, R0 * P.K + col, P.K),
                                      words);
      uint4 x[N];
      code_vectors<kBits>(words, x);
      store_group<N>(reinterpret_cast<uint4*>(P.cols.elements + b * (4 * kBits)), x, 32, whole,
                     stage);
    }
  }
}

__device__ __forceinline__ float decode_one(const DequantParams& P, uint32_t code, bool nan_block,
                                            float x, float m) {
  if (nan_block) return __uint_as_float(kNanF32);
  float t = __fmul_rn(P.f.decode[code], x);
  if (P.asym) t = __fadd_rn(t, m);
  return t;
}

// Fake-quantize of blocks of 32 along an axis other than the last (tiles 32 x 1 over [outer,
// rows, cols]): one thread per block, and the lanes of a warp on neighbouring columns, so each of
// a warp's 32 strided loads and stores is one contiguous run. (The generic quantize_kernel
// recomputes every slot's index with 64-bit divisions and ran these casts at a few percent of
// the bandwidth.)
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256) fake_columns_kernel(__grid_constant__ const QuantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int64_t cols = P.g.cols, per_outer = P.g.tiles_down * cols;
  const int64_t o = b / per_outer, t = b % per_outer;
  const int64_t row0 = t / cols * 32, left = P.g.rows - row0;
  const uint32_t mask = left >= 32 ? 0xFFFFFFFFu : (1u << left) - 1u;
  const int64_t i0 = (o * P.g.rows + row0) * cols + t % cols;
  // All 32 loads first, then the conversions: a load whose value is used at once (load_value's
  // per-element dtype branch) would leave one load in flight per warp.
  float v[32];
  if (P.in_dtype == int(DType::kF32)) {
    const float* in = static_cast<const float*>(P.in) + i0;
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = (mask >> j) & 1u ? __ldg(in + j * cols) : 0.0f;
  } else {
    const uint16_t* in = static_cast<const uint16_t*>(P.in) + i0;
    uint16_t h[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) h[j] = (mask >> j) & 1u ? __ldg(in + j * cols) : uint16_t(0);
    const bool bf16 = P.in_dtype == int(DType::kBF16);
#pragma unroll
    for (int j = 0; j < 32; ++j) v[j] = bf16 ? bf16_bits_to_f32(h[j]) : fp16_bits_to_f32(h[j]);
  }
  const DevSpec& s = P.s;
  const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
  if (!st.nan_block) values32<kMode, kInteger>(s, st, v, StridedDraws(s.key, i0, cols));
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    if ((mask >> j) & 1u) {
      store_out(P.fake_out, P.fake_dtype, i0 + j * cols,
                st.nan_block ? __uint_as_float(kNanF32) : v[j]);
    }
  }
}

// The same for 16-bit input with an even number of columns: a thread takes two neighbouring
// columns (one 4-byte load per row, a warp's loads 128 contiguous bytes) and casts them one
// after the other.
template <Rounding kMode, bool kInteger>
__global__ void __launch_bounds__(256)
    fake_column_pairs_kernel(__grid_constant__ const QuantParams P) {
  const int64_t pair = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t pairs = P.g.cols / 2, per_outer = P.g.tiles_down * pairs;
  if (pair >= P.g.outer * per_outer) return;
  const int64_t o = pair / per_outer, t = pair % per_outer;
  const int64_t cols = P.g.cols, row0 = t / pairs * 32, left = P.g.rows - row0;
  const uint32_t mask = left >= 32 ? 0xFFFFFFFFu : (1u << left) - 1u;
  const int64_t i0 = (o * P.g.rows + row0) * cols + 2 * (t % pairs);
  const uint16_t* in = static_cast<const uint16_t*>(P.in) + i0;
  uint32_t w[32];
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    w[j] = (mask >> j) & 1u ? __ldg(reinterpret_cast<const uint32_t*>(in + j * cols)) : 0u;
  }
  const bool bf16_in = P.in_dtype == int(DType::kBF16);
  const bool bf16_out = P.fake_dtype == int(DType::kBF16);
  uint32_t packed[32];
  const DevSpec& s = P.s;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    float v[32];
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const uint16_t bits = uint16_t(w[j] >> (16 * h));
      v[j] = bf16_in ? bf16_bits_to_f32(bits) : fp16_bits_to_f32(bits);
    }
    const BlockState st = scale32(s, v, amax_f32(v, 32), mask, 1);
    if (!st.nan_block) values32<kMode, kInteger>(s, st, v, StridedDraws(s.key, i0 + h, cols));
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const float x = st.nan_block ? __uint_as_float(kNanF32) : v[j];
      if (bf16_out) {
        const uint32_t b = f32_to_bf16_bits(x);
        packed[j] = h == 0 ? b : packed[j] | (b << 16);
      } else if ((mask >> j) & 1u) {
        static_cast<float*>(P.fake_out)[i0 + j * cols + h] = x;
      }
    }
  }
  if (!bf16_out) return;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    if ((mask >> j) & 1u) {
      *reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(P.fake_out) + i0 + j * cols) = packed[j];
    }
  }
}

// Contiguous blocks with k % 8 == 0: one thread per chunk of 8 codes (`bits` bytes in, 8 values
// out).
__global__ void __launch_bounds__(256)
    dequantize_chunks_kernel(__grid_constant__ const DequantParams P) {
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int k = P.g.k, bits = P.f.bits, cpb = k / 8;
  if (t >= P.g.num_blocks * cpb) return;
  const int64_t b = t / cpb;
  const int c = int(t - b * cpb);
  const int64_t run = b / P.g.blocks_per_run;
  const int64_t j = b - run * P.g.blocks_per_run;
  const int64_t i0 = run * P.g.run_len + j * k + c * 8;
  const int n = int(min(int64_t(8), P.g.run_len - j * k - c * 8));
  if (n <= 0) return;
  const uint8_t scale = __ldg(P.scales + b);
  const bool nan_block = scale == kScaleNan;
  const float x = e8m0_value(scale);
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const uint8_t* q = P.elements + t * bits;
  uint64_t packed = 0;
  switch (bits) {
    case 8:
      packed = __ldg(reinterpret_cast<const unsigned long long*>(q));
      break;
    case 4:
      packed = __ldg(reinterpret_cast<const unsigned int*>(q));
      break;
    case 2:
      packed = __ldg(reinterpret_cast<const unsigned short*>(q));
      break;
    default:
      for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
  }
  const uint32_t code_mask = (1u << bits) - 1u;
  float d[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    d[i] = decode_one(P, uint32_t(packed >> (i * bits)) & code_mask, nan_block, x, m);
  }
  if (n == 8 && P.out_dtype == int(DType::kF32) &&
      (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
    float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
    p[0] = make_float4(d[0], d[1], d[2], d[3]);
    p[1] = make_float4(d[4], d[5], d[6], d[7]);
  } else if (n == 8 && P.out_dtype == int(DType::kBF16) &&
             (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
    uint32_t w[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      w[i] =
          uint32_t(f32_to_bf16_bits(d[2 * i])) | (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
    }
    *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
        make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if (i < n) store_out(P.out, P.out_dtype, i0 + i, d[i]);
    }
  }
}

__global__ void __launch_bounds__(256) dequantize_kernel(__grid_constant__ const DequantParams P) {
  const int64_t b = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (b >= P.g.num_blocks) return;
  const int k = P.g.k, bits = P.f.bits;
  const uint8_t scale = P.scales[b];
  const float x = e8m0_value(scale);
  const bool nan_block = scale == kScaleNan;
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  const int64_t first_bit = b * int64_t(k) * bits;  // blocks need not start on a byte
  const uint8_t* src = P.elements + first_bit / 8;
  const uint32_t code_mask = (1u << bits) - 1u;
  auto decode = [&](uint32_t code) {
    if (nan_block) return __uint_as_float(kNanF32);
    float t = __fmul_rn(P.f.decode[code], x);
    if (P.asym) t = __fadd_rn(t, m);
    return t;
  };
  if (P.g.contiguous && (k & 7) == 0) {
    const int64_t run = b / P.g.blocks_per_run;
    const int64_t j = b % P.g.blocks_per_run;
    const int64_t first = run * P.g.run_len + j * k;
    const int n_real = int(min(int64_t(k), P.g.run_len - j * k));
    for (int c = 0; c < k / 8; ++c) {
      const uint8_t* q = src + c * bits;
      uint64_t packed = 0;
      switch (bits) {
        case 8:
          packed = *reinterpret_cast<const uint64_t*>(q);
          break;
        case 4:
          packed = *reinterpret_cast<const uint32_t*>(q);
          break;
        case 2:
          packed = *reinterpret_cast<const uint16_t*>(q);
          break;
        default:
          for (int i = 0; i < bits; ++i) packed |= uint64_t(q[i]) << (8 * i);
      }
      float d[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) d[i] = decode(uint32_t(packed >> (i * bits)) & code_mask);
      const int64_t i0 = first + c * 8;
      const int n = n_real - c * 8;
      if (n >= 8 && P.out_dtype == int(DType::kF32) &&
          (reinterpret_cast<uintptr_t>(static_cast<float*>(P.out) + i0) & 15) == 0) {
        float4* p = reinterpret_cast<float4*>(static_cast<float*>(P.out) + i0);
        p[0] = make_float4(d[0], d[1], d[2], d[3]);
        p[1] = make_float4(d[4], d[5], d[6], d[7]);
      } else if (n >= 8 && P.out_dtype == int(DType::kBF16) &&
                 (reinterpret_cast<uintptr_t>(static_cast<uint16_t*>(P.out) + i0) & 15) == 0) {
        uint32_t w[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          w[i] = uint32_t(f32_to_bf16_bits(d[2 * i])) |
                 (uint32_t(f32_to_bf16_bits(d[2 * i + 1])) << 16);
        }
        *reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + i0) =
            make_uint4(w[0], w[1], w[2], w[3]);
      } else {
        for (int i = 0; i < min(n, 8); ++i) store_out(P.out, P.out_dtype, i0 + i, d[i]);
      }
    }
    return;
  }
  GridSrc where(nullptr, 0, &P.g, b);
  uint32_t acc = 0;
  int nacc = 0;
  if (first_bit % 8 != 0) {
    acc = uint32_t(*src++) >> (first_bit % 8);
    nacc = 8 - int(first_bit % 8);
  }
  for (int slot = 0; slot < k; ++slot) {
    while (nacc < bits) {
      acc |= uint32_t(*src++) << nacc;
      nacc += 8;
    }
    const uint32_t code = acc & code_mask;
    acc >>= bits;
    nacc -= bits;
    const int64_t idx = where.index(slot);
    if (idx >= 0) store_out(P.out, P.out_dtype, idx, decode(code));
  }
}

// Dense contiguous blocks with k = 32 * G (G a power of two), codes of 4 or 8 bits, 16-byte
// aligned buffers: one thread per 32 codes (one or two 16-byte loads), 16-byte stores. E4M3 and
// E5M2 decode with the hardware conversion to half precision (exact, NaN and Inf included); other
// formats read the decode table from shared memory (at most 16 distinct words for 4-bit codes:
// no bank conflicts).
template <int kBits>
__global__ void __launch_bounds__(256)
    dequantize_vec_kernel(__grid_constant__ const DequantParams P, int log2g) {
  extern __shared__ uint4 stage_all[];
  __shared__ float table[1 << kBits];
  for (int i = threadIdx.x; i < (1 << kBits); i += blockDim.x) table[i] = P.f.decode[i];
  __syncthreads();
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= (P.g.num_blocks << log2g)) return;
  const int64_t b = t >> log2g;
  const uint4* src = reinterpret_cast<const uint4*>(P.elements + t * (4 * kBits));
  uint32_t words[kBits];
#pragma unroll
  for (int q = 0; q < kBits / 4; ++q) {
    const uint4 a = __ldg(src + q);
    words[4 * q] = a.x, words[4 * q + 1] = a.y, words[4 * q + 2] = a.z, words[4 * q + 3] = a.w;
  }
  const uint8_t scale = __ldg(P.scales + b);
  const bool nan_block = scale == kScaleNan;
  const float x = e8m0_value(scale);
  const float m = P.asym ? bf16_bits_to_f32(P.offsets[b]) : 0.0f;
  float v[32];
  if (kBits == 8 && P.f.cvt != 0) {
#pragma unroll
    for (int w = 0; w < 8; ++w) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint16_t pair = uint16_t(words[w] >> (16 * h));
        uint32_t f16x2;
        if (P.f.cvt == 1) {
          asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(f16x2) : "h"(pair));
        } else {
          asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(f16x2) : "h"(pair));
        }
        __half2 hh;
        memcpy(&hh, &f16x2, 4);
        const float2 f = __half22float2(hh);
        v[4 * w + 2 * h] = f.x;
        v[4 * w + 2 * h + 1] = f.y;
      }
    }
  } else {
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      v[j] = table[(words[j * kBits / 32] >> ((j * kBits) % 32)) & ((1u << kBits) - 1u)];
    }
  }
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    float d = __fmul_rn(v[j], x);
    if (P.asym) d = __fadd_rn(d, m);
    v[j] = d;
  }
  const bool whole = (t | 31) < (P.g.num_blocks << log2g);
  if (P.out_dtype == int(DType::kF32)) {
    uint4 x[8];
    fake_vectors_f32(v, nan_block, x);
    store_group<8>(reinterpret_cast<uint4*>(static_cast<float*>(P.out) + t * 32), x, 32, whole,
                   stage_all + (threadIdx.x >> 5) * (32 * 9));
  } else {
    uint4 x[4];
    fake_vectors_bf16(v, nan_block, x);
    store_group<4>(reinterpret_cast<uint4*>(static_cast<uint16_t*>(P.out) + t * 32), x, 32, whole,
                   stage_all + (threadIdx.x >> 5) * (32 * 5));
  }
}

// ------------------------------------------------------------------------------------------
// Host side.

}  // namespace

DevFormat make_dev_format(const FormatTraits& f) {
  DevFormat p{};
  p.bits = f.bits;
  p.man_bits = f.man_bits;
  p.emin = f.emin;
  p.emax = f.emax;
  p.max_code = f.max_magnitude_code;
  const float m = static_cast<float>(f.max_normal);
  const uint32_t mb = std::bit_cast<uint32_t>(m);
  p.max_sig24 = (mb & 0x7FFFFFu) | 0x800000u;
  p.max_floor_log2 = int(mb >> 23) - 127;
  p.emin_b = f.emin + 127;
  p.magic_add = f.is_integer ? uint32_t(f.emin + 150) << 23 : uint32_t(23 - f.man_bits) << 23;
  p.max_value = m;
  p.cvt = f.format == ElementFormat::kE4M3 ? 1 : f.format == ElementFormat::kE5M2 ? 2 : 0;
  for (int c = 0; c < 256; ++c) {
    p.decode[c] = c < (1 << f.bits) ? static_cast<float>(decode_element(f, uint8_t(c))) : 0.0f;
  }
  return p;
}

DevSpec make_dev_spec(const QuantSpec& spec) {
  DevSpec s{};
  s.f = make_dev_format(traits(spec.format));
  s.rule = int(spec.scale_rule);
  s.asym = spec.asymmetric;
  s.flush = spec.flush_subnormals;
  s.zero_scale = spec.zero_block_scale;
  s.key = stochastic_stream_key(spec.seed);
  s.window0_key = stochastic_window_key(s.key, 0);
  return s;
}

namespace {

std::string make_dev_grid(std::span<const int64_t> shape, const QuantSpec& spec, DevGrid* out) {
  std::string error;
  const BlockGrid g = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  DevGrid d{};
  d.outer = g.outer;
  d.rows = g.rows;
  d.cols = g.cols;
  d.tile_rows = g.tile_rows;
  d.tile_cols = g.tile_cols;
  d.tiles_down = g.tiles_down;
  d.tiles_across = g.tiles_across;
  d.num_blocks = g.num_blocks();
  d.k = g.block_elems();
  d.contiguous = g.blocks_are_contiguous_runs();
  const bool row_tiles = g.tile_rows == 1;
  d.run_len = row_tiles ? g.cols : g.rows;
  d.blocks_per_run = row_tiles ? g.tiles_across : g.tiles_down;
  *out = d;
  return "";
}

std::string check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string(what) + ": " + cudaGetErrorString(e);
  return "";
}

std::string check_dtype_in(DType t) {
  if (t != DType::kF32 && t != DType::kBF16 && t != DType::kF16) return "unknown input dtype";
  return "";
}

template <template <Rounding, bool> class Launch, class... Args>
void dispatch(Rounding mode, bool integer, Args&&... args) {
  auto go = [&]<Rounding M>() {
    if (integer) {
      Launch<M, true>::run(args...);
    } else {
      Launch<M, false>::run(args...);
    }
  };
  switch (mode) {
    case Rounding::kNearestEven:
      go.template operator()<Rounding::kNearestEven>();
      break;
    case Rounding::kNearestAway:
      go.template operator()<Rounding::kNearestAway>();
      break;
    case Rounding::kTowardZero:
      go.template operator()<Rounding::kTowardZero>();
      break;
    case Rounding::kStochastic:
      go.template operator()<Rounding::kStochastic>();
      break;
  }
}

template <Rounding M, bool I>
struct LaunchQuantize {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t groups = (P.g.num_blocks + P.group - 1) / P.group;
    const int64_t grid = (groups + threads - 1) / threads;
    quantize_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

template <Rounding M, bool I>
struct LaunchLanes {
  static void run(const QuantParams& P, int log2g, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = ((P.g.num_blocks << log2g) + threads - 1) / threads;
    quantize_lanes_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P, log2g);
  }
};

template <Rounding M, bool I>
struct LaunchFakeColumnPairs {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.outer * P.g.tiles_down * (P.g.cols / 2) + threads - 1) / threads;
    fake_column_pairs_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

template <Rounding M, bool I>
struct LaunchFakeColumns {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.num_blocks + threads - 1) / threads;
    fake_columns_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

template <Rounding M, bool I>
struct LaunchDual {
  static void run(const DualParams& P, dim3 grid, cudaStream_t stream) {
    dual_kernel<M, I><<<grid, kDualThreads, 0, stream>>>(P);
  }
};

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// log2 of the threads per block of the 32-values-per-thread kernels (quantize_vec,
// dequantize_vec), or -1 where they don't apply: contiguous blocks that tile the tensor (every
// run holds whole blocks), k = 32 * G with G a power of two <= 8, codes of 4 or 8 bits.
int vec_log2g(const DevGrid& g, int bits) {
  if (!g.contiguous || g.k % 32 != 0 || g.run_len % g.k != 0) return -1;
  if (bits != 4 && bits != 8) return -1;
  const int G = g.k / 32;
  if (G > 8 || (G & (G - 1)) != 0) return -1;
  if ((g.num_blocks * G + 255) / 256 > int64_t(0x7FFFFFFF)) return -1;
  return std::countr_zero(unsigned(G));
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
struct LaunchDualVec4 : LaunchDualVecBits<M, I, 4> {};

std::string run_quantize(const void* d_in, DType dtype, std::span<const int64_t> shape,
                         const QuantSpec& spec, QuantParams P, cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (std::string e = make_dev_grid(shape, spec, &P.g); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  if ((P.g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P.s = make_dev_spec(spec);
  P.in = d_in;
  P.in_dtype = int(dtype);
  const int bits = traits(spec.format).bits;
  P.group = 8 / std::gcd(8, int((int64_t(P.g.k) * bits) % 8));
  const bool integer = traits(spec.format).is_integer;
  // Fake-quantized values do not depend on how codes pack, so every width takes the fast paths.
  const int log2g = vec_log2g(P.g, P.fake_out != nullptr ? 8 : bits);
  if (log2g >= 0 && aligned16(d_in) && aligned16(P.fake_out ? P.fake_out : P.elements)) {
    if (spec.rounding == Rounding::kStochastic && bits == 4 && dtype == DType::kBF16 &&
        !spec.asymmetric && !spec.flush_subnormals && P.fake_out == nullptr) {
      integer ? launch_vec_bf16_stochastic<true>(P, log2g, stream)
              : launch_vec_bf16_stochastic<false>(P, log2g, stream);
      return check_launch("quantize kernel launch");
    }
    if (bits == 4 && P.fake_out == nullptr) {
      dispatch<LaunchVec4>(spec.rounding, integer, P, log2g, stream);
    } else {
      dispatch<LaunchVec8>(spec.rounding, integer, P, log2g, stream);
    }
    return check_launch("quantize kernel launch");
  }
  if (P.fake_out != nullptr && !P.g.contiguous && P.g.tile_rows == 32 && P.g.tile_cols == 1) {
    // Pairs halve the threads; on an H200 they cast 8192 x 3072 bfloat16 columns in 85 us
    // against 95, but 8192 x 768 in 32 against 26.
    const bool pairs = dtype != DType::kF32 && P.g.cols % 2 == 0 && P.g.cols >= 2048 &&
                       (reinterpret_cast<uintptr_t>(d_in) & 3) == 0 &&
                       (reinterpret_cast<uintptr_t>(P.fake_out) & 3) == 0;
    if (pairs) {
      dispatch<LaunchFakeColumnPairs>(spec.rounding, integer, P, stream);
    } else {
      dispatch<LaunchFakeColumns>(spec.rounding, integer, P, stream);
    }
    return check_launch("quantize kernel launch");
  }
  const int G = P.g.k / 8;
  if (P.g.contiguous && P.g.k % 8 == 0 && G <= 32 && (G & (G - 1)) == 0 &&
      (P.g.num_blocks * G + 255) / 256 <= int64_t(0x7FFFFFFF)) {
    dispatch<LaunchLanes>(spec.rounding, integer, P, std::countr_zero(unsigned(G)), stream);
  } else {
    dispatch<LaunchQuantize>(spec.rounding, integer, P, stream);
  }
  return check_launch("quantize kernel launch");
}

}  // namespace

bool cuda_device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

std::string quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, uint8_t* d_elements, uint8_t* d_scales,
                          uint16_t* d_offsets, cudaStream_t stream) {
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  QuantParams P{};
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string fake_quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, DType out_dtype, void* d_out,
                               cudaStream_t stream) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "fake-quantize writes float32 or bfloat16, not float16";
  }
  QuantParams P{};
  P.fake_out = d_out;
  P.fake_dtype = int(out_dtype);
  if (element_count_fits(shape) && element_count(shape) > 0 && d_out == nullptr) {
    return "null output";
  }
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string dequantize_cuda(const uint8_t* d_elements, const uint8_t* d_scales,
                            const uint16_t* d_offsets, std::span<const int64_t> shape,
                            const QuantSpec& spec, DType out_dtype, void* d_out,
                            cudaStream_t stream) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "dequantize writes float32 or bfloat16, not float16";
  }
  if (std::string e = validate(spec); !e.empty()) return e;
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  DequantParams P{};
  if (std::string e = make_dev_grid(shape, spec, &P.g); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  if ((P.g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P.f = make_dev_format(traits(spec.format));
  P.asym = spec.asymmetric;
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  P.out = d_out;
  P.out_dtype = int(out_dtype);
  const int threads = 256;
  const int bits = traits(spec.format).bits;
  if (const int log2g = vec_log2g(P.g, bits);
      log2g >= 0 && aligned16(d_elements) && aligned16(d_out)) {
    const unsigned grid = unsigned(((P.g.num_blocks << log2g) + threads - 1) / threads);
    const size_t stage = stage_bytes(threads, out_dtype == DType::kF32 ? 8 : 4);
    if (bits == 8) {
      dequantize_vec_kernel<8><<<grid, threads, stage, stream>>>(P, log2g);
    } else {
      dequantize_vec_kernel<4><<<grid, threads, stage, stream>>>(P, log2g);
    }
    return check_launch("dequantize kernel launch");
  }
  if (P.g.contiguous && P.g.k % 8 == 0) {
    const int64_t chunks = P.g.num_blocks * (P.g.k / 8);
    if ((chunks + threads - 1) / threads > int64_t(0x7FFFFFFF)) return "tensor too large";
    dequantize_chunks_kernel<<<unsigned((chunks + threads - 1) / threads), threads, 0, stream>>>(P);
    return check_launch("dequantize kernel launch");
  }
  dequantize_kernel<<<unsigned((P.g.num_blocks + threads - 1) / threads), threads, 0, stream>>>(P);
  return check_launch("dequantize kernel launch");
}

std::string quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxDeviceBuffers rows, MxDeviceBuffers cols,
                               cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (shape.size() != 2) return "dual quantize needs a 2-D [M, K] matrix";
  if (spec.is_tiled() || spec.block_size != 32) return "dual quantize needs 1-D blocks of 32";
  if (shape[0] < 0 || shape[1] < 0) return "negative dimension";
  if (spec.asymmetric && (rows.offsets == nullptr || cols.offsets == nullptr)) {
    return "asymmetric spec needs offsets buffers";
  }
  const int bits = traits(spec.format).bits;
  if ((32 * bits) % 8 != 0) return "unsupported format";
  DualParams P{};
  P.s = make_dev_spec(spec);
  P.in = d_in;
  P.in_dtype = int(dtype);
  P.M = shape[0];
  P.K = shape[1];
  if (P.M == 0 || P.K == 0) return "";
  P.row_blocks_per_row = (P.K + 31) / 32;
  P.rows = rows;
  P.cols = cols;
  if (dual_bf16_e2m1_applies(P, spec, dtype)) {
    launch_dual_bf16_e2m1(P, stream);
    return check_launch("dual quantize kernel launch");
  }
  if ((bits == 4 || bits == 8) && aligned16(rows.elements) && aligned16(cols.elements)) {
    const int64_t gx = (P.K + kDualVecCols - 1) / kDualVecCols, gy = (P.M + 31) / 32;
    if (gx > 0x7FFFFFFF || gy > 65535) return "matrix too large for the dual kernel grid";
    const int vec_loads = aligned16(d_in) && P.K % (dtype == DType::kF32 ? 4 : 8) == 0;
    const dim3 grid{unsigned(gx), unsigned(gy)};
    const bool integer = traits(spec.format).is_integer;
    if (bits == 8) {
      dispatch<LaunchDualVec8>(spec.rounding, integer, P, grid, vec_loads, stream);
    } else {
      dispatch<LaunchDualVec4>(spec.rounding, integer, P, grid, vec_loads, stream);
    }
    return check_launch("dual quantize kernel launch");
  }
  const int64_t gx = (P.K + kDualCols - 1) / kDualCols, gy = (P.M + kDualRows - 1) / kDualRows;
  if (gx > 0x7FFFFFFF || gy > 65535) return "matrix too large for the dual kernel grid";
  dispatch<LaunchDual>(spec.rounding, traits(spec.format).is_integer, P,
                       dim3(unsigned(gx), unsigned(gy)), stream);
  return check_launch("dual quantize kernel launch");
}

}  // namespace mx::cuda
