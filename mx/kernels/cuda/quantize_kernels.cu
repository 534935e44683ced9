// The quantize and fake-quantize kernels: the general kernel (any grid, one thread per block),
// the lanes kernel (contiguous blocks of 8 * G values, G threads each) and the fast kernels (32
// values per thread). The host side (quantize_cuda.cu) picks one; NOTES.md describes them.
#include "mx/kernels/cuda/quantize_kernels.cuh"

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

template <Rounding M, bool I>
struct LaunchQuantize {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t groups = (P.g.num_blocks + P.group - 1) / P.group;
    const int64_t grid = (groups + threads - 1) / threads;
    quantize_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

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

template <Rounding M, bool I>
struct LaunchLanes {
  static void run(const QuantParams& P, int log2g, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = ((P.g.num_blocks << log2g) + threads - 1) / threads;
    quantize_lanes_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P, log2g);
  }
};

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
  packed_codes32<kMode, kInteger, kBits>(s, st, v, 0xFFFFFFFFu, draws, words);
  uint4* stage = stage_all + (threadIdx.x >> 5) * (32 * (code_stage_vectors(kBits) + 1));
  if constexpr (kBits == 6) {
    // 24 bytes per thread: a whole warp's 768 bytes go out as 48 16-byte vectors.
    if (!whole) return store_codes6(P.elements + t * 24, words);
    const int lane = threadIdx.x & 31;
    uint32_t* stage32 = reinterpret_cast<uint32_t*>(stage);
#pragma unroll
    for (int q = 0; q < 6; ++q) stage32[lane * 6 + q] = words[q];
    __syncwarp();
    uint4* warp_out = reinterpret_cast<uint4*>(P.elements + (t - lane) * 24);
    warp_out[lane] = stage[lane];
    if (lane < 16) warp_out[32 + lane] = stage[32 + lane];
    __syncwarp();
  } else {
    uint4 x[kBits / 4];
    code_vectors<kBits>(words, x);
    store_group<kBits / 4>(reinterpret_cast<uint4*>(P.elements + t * (4 * kBits)), x, 32, whole,
                           stage);
  }
}

// Dense contiguous blocks (the blocks tile the flat tensor: runs are whole blocks) with k = 32 *
// G, G a power of two <= 8, codes of 4, 6 or 8 bits, 16-byte aligned buffers: each thread loads 32
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
    const int n = P.fake_out == nullptr              ? code_stage_vectors(kBits)
                  : P.fake_dtype == int(DType::kF32) ? 8
                                                     : 4;
    quantize_vec_kernel<kMode, kInteger, kBits>
        <<<unsigned(grid), threads, stage_bytes(threads, n), stream>>>(P, log2g);
  }
};

template <Rounding M, bool I>
struct LaunchVec8 : LaunchVec<M, I, 8> {};
template <Rounding M, bool I>
struct LaunchVec6 : LaunchVec<M, I, 6> {};
template <Rounding M, bool I>
struct LaunchVec4 : LaunchVec<M, I, 4> {};

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

}  // namespace

void launch_quantize(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream) {
  dispatch<LaunchQuantize>(mode, integer, P, stream);
}

void launch_quantize_lanes(const QuantParams& P, Rounding mode, bool integer, int log2g,
                           cudaStream_t stream) {
  dispatch<LaunchLanes>(mode, integer, P, log2g, stream);
}

void launch_quantize_vec(const QuantParams& P, Rounding mode, bool integer, int code_bits,
                         int log2g, cudaStream_t stream) {
  if (code_bits == 4) {
    dispatch<LaunchVec4>(mode, integer, P, log2g, stream);
  } else if (code_bits == 6) {
    dispatch<LaunchVec6>(mode, integer, P, log2g, stream);
  } else {
    dispatch<LaunchVec8>(mode, integer, P, log2g, stream);
  }
}

void launch_quantize_vec_bf16_stochastic(const QuantParams& P, bool integer, int log2g,
                                         cudaStream_t stream) {
  integer ? launch_vec_bf16_stochastic<true>(P, log2g, stream)
          : launch_vec_bf16_stochastic<false>(P, log2g, stream);
}

}  // namespace mx::cuda
