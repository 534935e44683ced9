// The distillation loss (ops.h, distillation_loss): one block per row, reduced in fixed trees, so
// results repeat bit for bit on one GPU. Three passes over the two rows: each thread's running
// maxima and sums of exponentials (rescaled when a maximum grows), combined over the block; the
// KL terms, summed the same way; then the gradient. Every element of the gradient is written after
// the block's last read of the model's logits, so dlogits may be the logits' own buffer.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "mx/nn/cuda/act_access.cuh"
#include "mx/nn/cuda/ops.h"
#include "mx/nn/cuda/reductions.cuh"

namespace mx::nn::cuda {
namespace {

// Running maximum and sum of exp(x - maximum) of one thread's share of a row.
struct RunningSum {
  float max = -INFINITY;
  float sum = 0.0f;
  __device__ void take(float x) {
    if (x == -INFINITY) return;
    if (x > max) {
      sum = sum * expf(max - x) + 1.0f;
      max = x;
    } else {
      sum += expf(x - max);
    }
  }
};

// The block's log of the row's sum of exp(x - row max); `r` is this thread's share.
__device__ float block_log_sum(const RunningSum& r, float* row_max, float* shared) {
  *row_max = block_reduce<true>(r.max, shared);
  const float sum =
      block_reduce<false>(r.max == -INFINITY ? 0.0f : r.sum * expf(r.max - *row_max), shared);
  return logf(sum);
}

template <class T>
__global__ void __launch_bounds__(1024)
    distillation_kernel(float* losses, T* dlogits, const T* logits, const T* teacher, int64_t v,
                        float dloss) {
  __shared__ float shared[32];
  const int64_t row = blockIdx.x;
  const T* s = logits + row * v;
  const T* t = teacher + row * v;
  RunningSum student_share, teacher_share;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    student_share.take(ld(s, j));
    teacher_share.take(ld(t, j));
  }
  float s_max = 0.0f, t_max = 0.0f;
  const float s_log = block_log_sum(student_share, &s_max, shared);
  const float t_log = block_log_sum(teacher_share, &t_max, shared);
  float kl = 0.0f;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float log_q = ld(t, j) - t_max - t_log;
    const float log_p = ld(s, j) - s_max - s_log;
    kl += expf(log_q) * (log_q - log_p);
  }
  kl = block_reduce<false>(kl, shared);  // its barriers also end every thread's reads of s
  if (threadIdx.x == 0) losses[row] = kl;
  if (dlogits == nullptr) return;
  T* d = dlogits + row * v;
  for (int64_t j = threadIdx.x; j < v; j += blockDim.x) {
    const float p = expf(ld(s, j) - s_max - s_log);
    const float q = expf(ld(t, j) - t_max - t_log);
    st(d, j, (p - q) * dloss);
  }
}

}  // namespace

void distillation_loss(float* losses, void* dlogits, const void* logits, const void* teacher,
                       int64_t n, int64_t v, float dloss, bool bf16_act, cudaStream_t s) {
  if (n <= 0) return;
  if (bf16_act) {
    distillation_kernel<__nv_bfloat16><<<unsigned(n), 1024, 0, s>>>(
        losses, static_cast<__nv_bfloat16*>(dlogits), static_cast<const __nv_bfloat16*>(logits),
        static_cast<const __nv_bfloat16*>(teacher), v, dloss);
  } else {
    distillation_kernel<float><<<unsigned(n), 1024, 0, s>>>(
        losses, static_cast<float*>(dlogits), static_cast<const float*>(logits),
        static_cast<const float*>(teacher), v, dloss);
  }
}

}  // namespace mx::nn::cuda
