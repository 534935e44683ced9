// The CUDA backend's gradient norm (a fixed tree of double partials) and AdamW.
#include "mx/nn/backend.h"
#include "mx/nn/cuda/ops_common.cuh"

namespace mx::nn::cuda {
namespace {

// ---- Norm and optimizer ----

__global__ void sum_squares_kernel(double* partials, const float* x, int64_t n) {
  __shared__ double shared[kThreads];
  const int64_t per = (n + gridDim.x - 1) / gridDim.x;
  const int64_t begin = int64_t(blockIdx.x) * per, end = min(n, begin + per);
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = x[i];
    sum += v * v;
  }
  shared[threadIdx.x] = sum;
  __syncthreads();
  for (int step = kThreads / 2; step > 0; step >>= 1) {
    if (threadIdx.x < step) shared[threadIdx.x] += shared[threadIdx.x + step];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

}  // namespace

int64_t norm_partials_count(int64_t) {
  return kNormBlocks;
}

void sum_squares(double* partials, const float* x, int64_t n, cudaStream_t s) {
  sum_squares_kernel<<<kNormBlocks, kThreads, 0, s>>>(partials, x, n);
}

void scale(float* x, float factor, int64_t n, cudaStream_t s) {
  map(
      n, s, [=] __device__(int64_t i) { return x[i]; },
      [=] __device__(int64_t i, float v) { x[i] = v * factor; });
}

void adamw(float* p, uint16_t* p_bf16, const float* g, float* m, float* v, const uint8_t* decay,
           int64_t n, const AdamWStep& step, cudaStream_t s) {
  struct State {
    float g, m, v, p;
    bool decays;
  };
  const float lr = step.lr, beta1 = step.beta1, beta2 = step.beta2, eps = step.eps;
  const float weight_decay = step.weight_decay, grad_scale = step.grad_scale;
  const float c1 = step.bias_correction1, c2 = step.bias_correction2;
  __nv_bfloat16* rounded = reinterpret_cast<__nv_bfloat16*>(p_bf16);
  map(
      n, s,
      [=] __device__(int64_t i) {
        return State{g[i] * grad_scale, m[i], v[i], p[i], decay[i] != 0};
      },
      [=] __device__(int64_t i, State x) {
        const float mi = beta1 * x.m + (1.0f - beta1) * x.g;
        const float vi = beta2 * x.v + (1.0f - beta2) * x.g * x.g;
        m[i] = mi;
        v[i] = vi;
        const float wd = x.decays ? weight_decay * x.p : 0.0f;
        const float pi = x.p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd);
        p[i] = pi;
        if (rounded != nullptr) rounded[i] = __float2bfloat16_rn(pi);
      });
}

}  // namespace mx::nn::cuda
