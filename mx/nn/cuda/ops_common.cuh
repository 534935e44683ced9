// What the CUDA backend's vector ops (ops_*.cu) share: launch sizes, the element-wise and
// 16-byte map kernels, and fixed-order column sums. Each formula is the CPU layer's
// (mx/nn/cpu/), in float32; results differ from the CPU's only by the order of float32 sums and
// by the device's exp/tanh/sqrt, and repeat bit for bit on one GPU: no atomics, fixed reduction
// trees. Private to mx/nn/cuda.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mx/nn/cuda/act_access.cuh"
#include "mx/nn/cuda/ops.h"
#include "mx/nn/cuda/reductions.cuh"

namespace mx::nn::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerChunk = 64;  // rows summed by one partial of a column sum
constexpr int kNormBlocks = 1024;      // fixed partials of a sum of squares
constexpr float kEps = 1e-5f;

__device__ __forceinline__ float maybe_bf16(float v, bool round) {
  return round ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

inline int blocks_for(int64_t count) {
  return int(std::min<int64_t>((count + kThreads - 1) / kThreads, int64_t{1} << 20));
}

template <class Fn>
__global__ void elementwise_kernel(int64_t count, Fn fn) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    fn(i);
  }
}

template <class Fn>
void elementwise(int64_t count, cudaStream_t s, Fn fn) {
  if (count > 0) elementwise_kernel<<<blocks_for(count), kThreads, 0, s>>>(count, fn);
}

// Element-wise ops as a load and a store: each thread loads kPerThread elements (a block's
// elements interleaved, so every load of a warp is one contiguous run), all before its first
// store. A lambda that loads and stores each element in turn leaves one load in flight per
// thread (the compiler may not move a load above a store that could alias it), far too few to
// keep memory busy.
constexpr int kPerThread = 8;

template <class Load, class Store>
__global__ void __launch_bounds__(kThreads) map_kernel(int64_t count, Load load, Store store) {
  using Value = decltype(load(int64_t{0}));
  const int64_t first = int64_t(blockIdx.x) * (kThreads * kPerThread) + threadIdx.x;
  Value values[kPerThread];
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int64_t i = first + j * kThreads;
    if (i < count) values[j] = load(i);
  }
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int64_t i = first + j * kThreads;
    if (i < count) store(i, values[j]);
  }
}

template <class Load, class Store>
void map(int64_t count, cudaStream_t s, Load load, Store store) {
  const int64_t per_block = int64_t(kThreads) * kPerThread;
  if (count > 0) {
    map_kernel<<<unsigned((count + per_block - 1) / per_block), kThreads, 0, s>>>(count, load,
                                                                                  store);
  }
}

// The same over bfloat16 tensors 16 bytes (8 values) at a time, for ops whose 2-byte loads
// would otherwise leave the memory system short of requests: out = fn(a, b) per element
// (b ignored with one input), pieces = elements / 8, every pointer 16-byte aligned.
constexpr int kPiecesPerThread = 2;

__device__ __forceinline__ float bf16_lo(uint32_t w) {
  return __uint_as_float(w << 16);
}
__device__ __forceinline__ float bf16_hi(uint32_t w) {
  return __uint_as_float(w & 0xFFFF0000u);
}

template <bool kTwoInputs, class Fn>
__global__ void __launch_bounds__(kThreads)
    map_bf16x8_kernel(int64_t pieces, uint4* out, const uint4* a, const uint4* b, Fn fn) {
  const int64_t first = int64_t(blockIdx.x) * (kThreads * kPiecesPerThread) + threadIdx.x;
  uint4 va[kPiecesPerThread], vb[kPiecesPerThread];
#pragma unroll
  for (int j = 0; j < kPiecesPerThread; ++j) {
    const int64_t i = first + j * kThreads;
    if (i < pieces) {
      va[j] = a[i];
      if constexpr (kTwoInputs) vb[j] = b[i];
    }
  }
#pragma unroll
  for (int j = 0; j < kPiecesPerThread; ++j) {
    const int64_t i = first + j * kThreads;
    if (i >= pieces) continue;
    const uint32_t wa[4] = {va[j].x, va[j].y, va[j].z, va[j].w};
    uint32_t wb[4] = {};
    if constexpr (kTwoInputs) wb[0] = vb[j].x, wb[1] = vb[j].y, wb[2] = vb[j].z, wb[3] = vb[j].w;
    uint32_t r[4];
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      const __nv_bfloat162 h = __floats2bfloat162_rn(fn(bf16_lo(wa[w]), bf16_lo(wb[w])),
                                                     fn(bf16_hi(wa[w]), bf16_hi(wb[w])));
      memcpy(&r[w], &h, sizeof r[w]);
    }
    out[i] = make_uint4(r[0], r[1], r[2], r[3]);
  }
}

// Whether map_bf16x8 takes these bfloat16 buffers of `count` elements.
bool takes_pieces(int64_t count, std::initializer_list<const void*> buffers) {
  if (count % 8 != 0) return false;
  for (const void* p : buffers) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  }
  return true;
}

template <bool kTwoInputs, class Fn>
void map_bf16x8(int64_t count, void* out, const void* a, const void* b, cudaStream_t s, Fn fn) {
  const int64_t pieces = count / 8, per_block = int64_t(kThreads) * kPiecesPerThread;
  if (pieces > 0) {
    map_bf16x8_kernel<kTwoInputs>
        <<<unsigned((pieces + per_block - 1) / per_block), kThreads, 0, s>>>(
            pieces, static_cast<uint4*>(out), static_cast<const uint4*>(a),
            static_cast<const uint4*>(b), fn);
  }
}

// ---- Column sums (norm weights, biases) ----

// partials[chunk][j] (and partials[chunks + chunk][j] for the second sum) over kRowsPerChunk rows.
template <class T, class Terms>
__global__ void column_partials_kernel(float* partials, int64_t n, int64_t c, Terms terms) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t chunk = blockIdx.y, chunks = gridDim.y;
  if (j >= c) return;
  float a = 0.0f, b = 0.0f;
  const int64_t end = min(n, (chunk + 1) * kRowsPerChunk);
  for (int64_t i = chunk * kRowsPerChunk; i < end; ++i) {
    float ta, tb;
    terms(i, j, &ta, &tb);
    a += ta;
    b += tb;
  }
  partials[chunk * c + j] = a;
  partials[(chunks + chunk) * c + j] = b;
}

// 8 columns a block, so that GPT-2's widths (768-3072) give 96-384 blocks, over every SM, and
// each thread few partials (16 a sum over 16384 rows in 32-row chunks) to load eight at a time.
// Thread t takes column 8 blockIdx.x + t % 8 and sums its run of partials, t / 8, t / 8 + 32,
// t / 8 + 64, ..., in order (a warp's loads are four 32-byte runs); then, for each column, four
// threads add eight runs' sums each and one thread those four, each in order. The second sums
// only where out_b is given.
constexpr int kFinishCols = 8;
constexpr int kFinishRuns = kThreads / kFinishCols;

__global__ void __launch_bounds__(kThreads)
    column_finish_kernel(float* out_a, float* out_b, const float* partials, int64_t chunks,
                         int64_t c) {
  __shared__ float runs[2][kFinishRuns][kFinishCols];
  __shared__ float quarters[2][4][kFinishCols];
  const int col = int(threadIdx.x) % kFinishCols, run = int(threadIdx.x) / kFinishCols;
  const int64_t j = int64_t(blockIdx.x) * kFinishCols + col;
  float a = 0.0f, b = 0.0f;
  if (j < c) {
#pragma unroll 8
    for (int64_t k = run; k < chunks; k += kFinishRuns) a += partials[k * c + j];
    if (out_b != nullptr) {
#pragma unroll 8
      for (int64_t k = run; k < chunks; k += kFinishRuns) b += partials[(chunks + k) * c + j];
    }
  }
  runs[0][run][col] = a;
  runs[1][run][col] = b;
  __syncthreads();
  if (run < 4) {
    constexpr int kPerQuarter = kFinishRuns / 4;
    a = b = 0.0f;
#pragma unroll
    for (int r = run * kPerQuarter; r < (run + 1) * kPerQuarter; ++r) {
      a += runs[0][r][col];
      b += runs[1][r][col];
    }
    quarters[0][run][col] = a;
    quarters[1][run][col] = b;
  }
  __syncthreads();
  if (run != 0 || j >= c) return;
  a = b = 0.0f;
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    a += quarters[0][q][col];
    b += quarters[1][q][col];
  }
  if (out_a != nullptr) out_a[j] += a;
  if (out_b != nullptr) out_b[j] += b;
}

// out_a += the column sums of scratch.partials' first `chunks` rows (where out_a is given),
// out_b += those of the next `chunks`.
inline void finish_column_sums(float* out_a, float* out_b, int64_t chunks, int64_t c,
                               const OpsScratch& scratch, cudaStream_t s) {
  column_finish_kernel<<<unsigned((c + kFinishCols - 1) / kFinishCols), kThreads, 0, s>>>(
      out_a, out_b, scratch.partials, chunks, c);
}

// out += the column sums of `partials`' `chunks` rows of c.
inline void finish_column_sums_of(float* out, const float* partials, int64_t chunks, int64_t c,
                                  cudaStream_t s) {
  column_finish_kernel<<<unsigned((c + kFinishCols - 1) / kFinishCols), kThreads, 0, s>>>(
      out, nullptr, partials, chunks, c);
}

template <class T, class Terms>
void column_sums(float* out_a, float* out_b, int64_t n, int64_t c, OpsScratch& scratch,
                 cudaStream_t s, Terms terms) {
  const int64_t chunks = (n + kRowsPerChunk - 1) / kRowsPerChunk;
  const dim3 grid(unsigned((c + kThreads - 1) / kThreads), unsigned(chunks));
  column_partials_kernel<T><<<grid, kThreads, 0, s>>>(scratch.partials, n, c, terms);
  finish_column_sums(out_a, out_b, chunks, c, scratch, s);
}

}  // namespace
}  // namespace mx::nn::cuda
