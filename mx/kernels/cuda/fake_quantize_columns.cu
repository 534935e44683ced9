// Fake-quantize of blocks of 32 along an axis other than the last (32 x 1 tiles), the case that
// the general quantize kernel reaches only through its slow index map. See NOTES.md.
#include "mx/kernels/cuda/fake_quantize_columns.cuh"

#include <cuda_runtime.h>

#include <cstdint>

#include "mx/core/dtype.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/rounding_dispatch.h"
#include "mx/kernels/cuda/vec_codec.cuh"

namespace mx::cuda {
namespace {

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

template <Rounding M, bool I>
struct LaunchFakeColumns {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.num_blocks + threads - 1) / threads;
    fake_columns_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

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

template <Rounding M, bool I>
struct LaunchFakeColumnPairs {
  static void run(const QuantParams& P, cudaStream_t stream) {
    const int threads = 256;
    const int64_t grid = (P.g.outer * P.g.tiles_down * (P.g.cols / 2) + threads - 1) / threads;
    fake_column_pairs_kernel<M, I><<<unsigned(grid), threads, 0, stream>>>(P);
  }
};

}  // namespace

void launch_fake_columns(const QuantParams& P, Rounding mode, bool integer, cudaStream_t stream) {
  dispatch<LaunchFakeColumns>(mode, integer, P, stream);
}

void launch_fake_column_pairs(const QuantParams& P, Rounding mode, bool integer,
                              cudaStream_t stream) {
  dispatch<LaunchFakeColumnPairs>(mode, integer, P, stream);
}

}  // namespace mx::cuda
