// The classifier's softmax cross-entropy (ops.h, classifier_loss): one block per row of logits,
// reduced in fixed trees, so results repeat bit for bit on one GPU.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "mx/nn/cuda/act_access.cuh"
#include "mx/nn/cuda/ops.h"
#include "mx/nn/cuda/ops_common.cuh"
#include "mx/nn/cuda/reductions.cuh"

namespace mx::nn::cuda {
namespace {

// Float32 rows, and rows too long for shared memory: two passes over the row. The first keeps each
// thread's running maximum and its sum of exponentials (rescaled when the maximum grows), combined
// over the block in a fixed tree; the second writes the gradient. Each pass loads kClassifierUnroll
// logits per thread before using them, so that a thread has that many loads in flight.
constexpr int kClassifierUnroll = 4;

template <class T>
__global__ void __launch_bounds__(1024)
    classifier_kernel(float* losses, T* dlogits, const T* logits, const uint32_t* targets,
                      int64_t v, int64_t stride, float dloss) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* li = logits + row * stride;
  const int64_t step = int64_t(blockDim.x) * kClassifierUnroll;
  float mx = -INFINITY, sum = 0.0f;
  for (int64_t j0 = threadIdx.x; j0 < v; j0 += step) {
    float x[kClassifierUnroll];
    float chunk_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < kClassifierUnroll; ++u) {
      const int64_t j = j0 + u * int64_t(blockDim.x);
      x[u] = j < v ? ld(li, j) : -INFINITY;
      chunk_max = fmaxf(chunk_max, x[u]);
    }
    const float m_new = fmaxf(mx, chunk_max);
    if (m_new == -INFINITY) continue;  // nothing but padding so far
    sum *= expf(mx - m_new);
#pragma unroll
    for (int u = 0; u < kClassifierUnroll; ++u) sum += expf(x[u] - m_new);
    mx = m_new;
  }
  const float row_max = block_reduce<true>(mx, shared);
  sum = block_reduce<false>(mx == -INFINITY ? 0.0f : sum * expf(mx - row_max), shared);
  const uint32_t target = targets[row];
  if (threadIdx.x == 0) losses[row] = logf(sum) - (ld(li, int64_t(target)) - row_max);
  if (dlogits == nullptr) return;
  __syncthreads();  // every thread has read its logits before any is overwritten
  const float inv = 1.0f / sum;
  T* di = dlogits + row * stride;
  for (int64_t j = v + threadIdx.x; j < stride; j += blockDim.x) st(di, j, 0.0f);
  for (int64_t j0 = threadIdx.x; j0 < v; j0 += step) {
    float x[kClassifierUnroll];
#pragma unroll
    for (int u = 0; u < kClassifierUnroll; ++u) {
      const int64_t j = j0 + u * int64_t(blockDim.x);
      x[u] = j < v ? ld(li, j) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < kClassifierUnroll; ++u) {
      const int64_t j = j0 + u * int64_t(blockDim.x);
      if (j < v) {
        const float p = expf(x[u] - row_max) * inv;
        st(di, j, (p - (j == int64_t(target) ? 1.0f : 0.0f)) * dloss);
      }
    }
  }
}

// A bfloat16 row small enough for shared memory is read from global memory once: staged there,
// 16 bytes per load, while each thread keeps its running maximum and sum of exponentials (as the
// float32 kernel does); then the gradient comes from the staged copy, 16 bytes at a time (exp(d)
// as exp2(d log2 e), one multiply and the hardware's base-2 exponential). Rows start wherever row *
// v puts them; the elements before the first 16-byte boundary (and after the last) go one at a
// time, and the staged copy is offset so that its vectors share the row's alignment.
constexpr int kStagedThreads = 1024;
constexpr int64_t kStagedMaxBytes = 160 << 10;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float exp_below(float x, float row_max) {
  return exp2f((x - row_max) * kLog2e);
}

__global__ void __launch_bounds__(kStagedThreads)
    classifier_staged_kernel(float* losses, __nv_bfloat16* dlogits, const __nv_bfloat16* logits,
                             const uint32_t* targets, int64_t v, int64_t stride, float dloss) {
  extern __shared__ uint4 staged_words[];
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* li = logits + row * stride;
  const int64_t to_boundary = (16 - int64_t(reinterpret_cast<uintptr_t>(li) & 15)) / 2 % 8;
  const int64_t head = to_boundary < v ? to_boundary : v;
  const int64_t vectors = (v - head) / 8, tail = head + vectors * 8;
  // Element j of the row at staged[j + shift]: vector k (elements head + 8k ...) at word k + 1.
  const int64_t shift = 8 - head;
  __nv_bfloat16* staged = reinterpret_cast<__nv_bfloat16*>(staged_words);
  // Each thread's running maximum and its sum of exponentials below it, rescaled when the
  // maximum grows, taken while the row is staged, so that the exponentials overlap the loads.
  float mx = -INFINITY, sum = 0.0f;
  auto take = [&](float chunk_max, auto add) {
    if (chunk_max == -INFINITY) return;  // a chunk of -inf adds nothing
    if (chunk_max > mx) {
      sum = mx == -INFINITY ? 0.0f : sum * exp_below(mx, chunk_max);
      mx = chunk_max;
    }
    add();
  };
  auto take_one = [&](float x) { take(x, [&] { sum += exp_below(x, mx); }); };
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) {
    staged[j + shift] = li[j];
    take_one(__bfloat162float(li[j]));
  }
  const uint4* body = reinterpret_cast<const uint4*>(li + head);
  for (int64_t k = threadIdx.x; k < vectors; k += blockDim.x) {
    const uint4 w = body[k];
    staged_words[k + 1] = w;
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
    float x[8];
    float chunk_max = -INFINITY;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      x[2 * u] = bf16_lo(words[u]), x[2 * u + 1] = bf16_hi(words[u]);
      chunk_max = fmaxf(chunk_max, fmaxf(x[2 * u], x[2 * u + 1]));
    }
    take(chunk_max, [&] {
#pragma unroll
      for (int u = 0; u < 8; ++u) sum += exp_below(x[u], mx);
    });
  }
  for (int64_t j = tail + threadIdx.x; j < v; j += blockDim.x) {
    staged[j + shift] = li[j];
    take_one(__bfloat162float(li[j]));
  }
  const float row_max = block_reduce<true>(mx, shared);  // its barrier also ends the staging
  sum = block_reduce<false>(mx == -INFINITY ? 0.0f : sum * exp_below(mx, row_max), shared);
  const uint32_t target = targets[row];
  if (threadIdx.x == 0) {
    losses[row] = logf(sum) - (__bfloat162float(staged[int64_t(target) + shift]) - row_max);
  }
  if (dlogits == nullptr) return;
  const float inv = 1.0f / sum;
  auto grad = [&](int64_t j, float x) {
    const float p = exp_below(x, row_max) * inv;
    return (p - (j == int64_t(target) ? 1.0f : 0.0f)) * dloss;
  };
  __nv_bfloat16* di = dlogits + row * stride;
  for (int64_t j = v + threadIdx.x; j < stride; j += blockDim.x) di[j] = __float2bfloat16_rn(0.0f);
  for (int64_t j = threadIdx.x; j < head; j += blockDim.x) {
    di[j] = __float2bfloat16_rn(grad(j, __bfloat162float(staged[j + shift])));
  }
  uint4* out = reinterpret_cast<uint4*>(di + head);
  for (int64_t k = threadIdx.x; k < vectors; k += blockDim.x) {
    const uint4 w = staged_words[k + 1];
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
    uint32_t packed[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const int64_t j = head + 8 * k + 2 * u;
      const __nv_bfloat162 pair =
          __floats2bfloat162_rn(grad(j, bf16_lo(words[u])), grad(j + 1, bf16_hi(words[u])));
      memcpy(&packed[u], &pair, sizeof packed[u]);
    }
    out[k] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
  for (int64_t j = tail + threadIdx.x; j < v; j += blockDim.x) {
    di[j] = __float2bfloat16_rn(grad(j, __bfloat162float(staged[j + shift])));
  }
}

}  // namespace

template <class T>
static void classifier_loss_impl(float* losses, void* dlogits, const void* logits,
                                 const uint32_t* targets, int64_t n, int64_t v, int64_t stride,
                                 float dloss, cudaStream_t s) {
  if (n <= 0) return;
  // dlogits may alias logits only row for row: the same address, or none.
  const size_t staged_bytes = size_t(v + 16) * sizeof(__nv_bfloat16);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (int64_t(staged_bytes) <= kStagedMaxBytes) {
      // Set at every launch, as the attribute belongs to the current device.
      cudaFuncSetAttribute(classifier_staged_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           int(staged_bytes));
      classifier_staged_kernel<<<unsigned(n), kStagedThreads, staged_bytes, s>>>(
          losses, static_cast<__nv_bfloat16*>(dlogits), static_cast<const __nv_bfloat16*>(logits),
          targets, v, stride, dloss);
      return;
    }
  }
  classifier_kernel<T><<<unsigned(n), 1024, 0, s>>>(
      losses, static_cast<T*>(dlogits), static_cast<const T*>(logits), targets, v, stride, dloss);
}

void classifier_loss(float* losses, void* dlogits, const void* logits, const uint32_t* targets,
                     int64_t n, int64_t v, float dloss, bool bf16_act, cudaStream_t s,
                     int64_t row_stride) {
  const int64_t stride = row_stride > 0 ? row_stride : v;
  if (bf16_act) {
    classifier_loss_impl<__nv_bfloat16>(losses, dlogits, logits, targets, n, v, stride, dloss, s);
  } else {
    classifier_loss_impl<float>(losses, dlogits, logits, targets, n, v, stride, dloss, s);
  }
}

}  // namespace mx::nn::cuda
