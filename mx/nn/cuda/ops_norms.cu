// The CUDA backend's LayerNorm and RMSNorm, forward and backward: one warp per row, the
// weight and bias gradients as fixed-order column sums.
#include "mx/nn/cuda/ops_common.cuh"

namespace mx::nn::cuda {
namespace {

// ---- Norms: one warp per row ----

template <class T>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* x,
                                         const float* w, const float* b, int64_t n, int64_t c,
                                         bool round) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const T* xi = x + row * c;
  float sum = 0.0f;
  for (int64_t j = lane; j < c; j += 32) sum += ld(xi, j);
  const float m = warp_sum(sum) / float(c);
  float var = 0.0f;
  for (int64_t j = lane; j < c; j += 32) {
    const float d = ld(xi, j) - m;
    var += d * d;
  }
  const float r = 1.0f / sqrtf(warp_sum(var) / float(c) + kEps);
  for (int64_t j = lane; j < c; j += 32) {
    const float v = (ld(xi, j) - m) * r * w[j] + (b != nullptr ? b[j] : 0.0f);
    st(out, row * c + j, maybe_bf16(v, round));
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

template <class T>
__global__ void layernorm_backward_kernel(T* dx, const T* dout, const T* x, const float* w,
                                          const float* mean, const float* rstd, int64_t n,
                                          int64_t c) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const float m = mean[row], r = rstd[row];
  float mg = 0.0f, mgx = 0.0f;
  for (int64_t j = lane; j < c; j += 32) {
    const float xhat = (ld(x, row * c + j) - m) * r;
    const float g = ld(dout, row * c + j) * w[j];
    mg += g;
    mgx += g * xhat;
  }
  mg = warp_sum(mg) / float(c);
  mgx = warp_sum(mgx) / float(c);
  for (int64_t j = lane; j < c; j += 32) {
    const float xhat = (ld(x, row * c + j) - m) * r;
    const float d = r * (ld(dout, row * c + j) * w[j] - mg - xhat * mgx);
    st(dx, row * c + j, ld(dx, row * c + j) + d);
  }
}

// The same for bfloat16 rows of c = 256 V: each lane reads its 8 V values once, in 16-byte
// vectors, and keeps them in registers for both passes.
template <int V>
__global__ void layernorm_backward_bf16_kernel(__nv_bfloat16* dx, const __nv_bfloat16* dout,
                                               const __nv_bfloat16* x, const float* w,
                                               const float* mean, const float* rstd, int64_t n) {
  constexpr int64_t c = 256 * V;
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const float m = mean[row], r = rstd[row];
  float xhat[V][8], g[V][8];
  float mg = 0.0f, mgx = 0.0f;
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const int64_t col = (v * 32 + lane) * 8;
    const uint4 xv = *reinterpret_cast<const uint4*>(x + row * c + col);
    const uint4 gv = *reinterpret_cast<const uint4*>(dout + row * c + col);
    const __nv_bfloat16* xe = reinterpret_cast<const __nv_bfloat16*>(&xv);
    const __nv_bfloat16* ge = reinterpret_cast<const __nv_bfloat16*>(&gv);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      xhat[v][e] = (__bfloat162float(xe[e]) - m) * r;
      g[v][e] = __bfloat162float(ge[e]) * w[col + e];
      mg += g[v][e];
      mgx += g[v][e] * xhat[v][e];
    }
  }
  mg = warp_sum(mg) / float(c);
  mgx = warp_sum(mgx) / float(c);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const int64_t col = (v * 32 + lane) * 8;
    uint4* dst = reinterpret_cast<uint4*>(dx + row * c + col);
    uint4 dv = *dst;
    __nv_bfloat16* de = reinterpret_cast<__nv_bfloat16*>(&dv);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float d = r * (g[v][e] - mg - xhat[v][e] * mgx);
      de[e] = __float2bfloat16_rn(__bfloat162float(de[e]) + d);
    }
    *dst = dv;
  }
}

template <class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const T* x, const float* w, int64_t n,
                                       int64_t c, bool round) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  float ss = 0.0f;
  for (int64_t j = lane; j < c; j += 32) {
    const float v = ld(x, row * c + j);
    ss += v * v;
  }
  const float r = 1.0f / sqrtf(warp_sum(ss) / float(c) + kEps);
  for (int64_t j = lane; j < c; j += 32) {
    st(out, row * c + j, maybe_bf16(ld(x, row * c + j) * r * w[j], round));
  }
  if (lane == 0) rstd[row] = r;
}

template <class T>
__global__ void rmsnorm_backward_kernel(T* dx, const T* dout, const T* x, const float* w,
                                        const float* rstd, int64_t n, int64_t c) {
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const float r = rstd[row];
  float mgx = 0.0f;
  for (int64_t j = lane; j < c; j += 32) {
    mgx += ld(dout, row * c + j) * w[j] * ld(x, row * c + j);
  }
  mgx = warp_sum(mgx) / float(c);
  for (int64_t j = lane; j < c; j += 32) {
    const float xv = ld(x, row * c + j);
    const float d = r * ld(dout, row * c + j) * w[j] - xv * r * r * r * mgx;
    st(dx, row * c + j, ld(dx, row * c + j) + d);
  }
}

unsigned warp_rows_blocks(int64_t n) {
  return unsigned((n * 32 + kThreads - 1) / kThreads);
}

}  // namespace

int64_t column_partials_floats(int64_t n, int64_t c) {
  return 2 * ((n + kRowsPerChunk - 1) / kRowsPerChunk) * c;
}

template <class T>
static void layernorm_forward_impl(void* out, float* mean, float* rstd, const void* x,
                                   const float* w, const float* b, int64_t n, int64_t c,
                                   bool round_bf16, cudaStream_t s) {
  layernorm_forward_kernel<T><<<warp_rows_blocks(n), kThreads, 0, s>>>(
      static_cast<T*>(out), mean, rstd, static_cast<const T*>(x), w, b, n, c, round_bf16);
}

void layernorm_forward(void* out, float* mean, float* rstd, const void* x, const float* w,
                       const float* b, int64_t n, int64_t c, bool bf16_act, bool round_bf16,
                       cudaStream_t s) {
  if (bf16_act) {
    layernorm_forward_impl<__nv_bfloat16>(out, mean, rstd, x, w, b, n, c, round_bf16, s);
  } else {
    layernorm_forward_impl<float>(out, mean, rstd, x, w, b, n, c, round_bf16, s);
  }
}

template <class T>
static void layernorm_backward_impl(void* dx, float* dw, float* db, const void* dout, const void* x,
                                    const float* w, const float* mean, const float* rstd, int64_t n,
                                    int64_t c, OpsScratch& scratch, cudaStream_t s) {
  const T* g = static_cast<const T*>(dout);
  const T* xv = static_cast<const T*>(x);
  const bool vectors = std::is_same_v<T, __nv_bfloat16> && c % 256 == 0 && c <= 1024 &&
                       (reinterpret_cast<uintptr_t>(dx) | reinterpret_cast<uintptr_t>(dout) |
                        reinterpret_cast<uintptr_t>(x)) %
                               16 ==
                           0;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (vectors) {
      auto* d = static_cast<__nv_bfloat16*>(dx);
      switch (c / 256) {
        case 1:
          layernorm_backward_bf16_kernel<1>
              <<<warp_rows_blocks(n), kThreads, 0, s>>>(d, g, xv, w, mean, rstd, n);
          break;
        case 2:
          layernorm_backward_bf16_kernel<2>
              <<<warp_rows_blocks(n), kThreads, 0, s>>>(d, g, xv, w, mean, rstd, n);
          break;
        case 3:
          layernorm_backward_bf16_kernel<3>
              <<<warp_rows_blocks(n), kThreads, 0, s>>>(d, g, xv, w, mean, rstd, n);
          break;
        default:
          layernorm_backward_bf16_kernel<4>
              <<<warp_rows_blocks(n), kThreads, 0, s>>>(d, g, xv, w, mean, rstd, n);
          break;
      }
    }
  }
  if (!vectors) {
    layernorm_backward_kernel<T>
        <<<warp_rows_blocks(n), kThreads, 0, s>>>(static_cast<T*>(dx), g, xv, w, mean, rstd, n, c);
  }
  column_sums<T>(dw, db, n, c, scratch, s,
                 [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                   const float gij = ld(g, i * c + j);
                   *a = gij * ((ld(xv, i * c + j) - mean[i]) * rstd[i]);
                   *b2 = gij;
                 });
}

void layernorm_backward(void* dx, float* dw, float* db, const void* dout, const void* x,
                        const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                        bool bf16_act, OpsScratch& scratch, cudaStream_t s) {
  if (bf16_act) {
    layernorm_backward_impl<__nv_bfloat16>(dx, dw, db, dout, x, w, mean, rstd, n, c, scratch, s);
  } else {
    layernorm_backward_impl<float>(dx, dw, db, dout, x, w, mean, rstd, n, c, scratch, s);
  }
}

template <class T>
static void rmsnorm_forward_impl(void* out, float* rstd, const void* x, const float* w, int64_t n,
                                 int64_t c, bool round_bf16, cudaStream_t s) {
  rmsnorm_forward_kernel<T><<<warp_rows_blocks(n), kThreads, 0, s>>>(
      static_cast<T*>(out), rstd, static_cast<const T*>(x), w, n, c, round_bf16);
}

void rmsnorm_forward(void* out, float* rstd, const void* x, const float* w, int64_t n, int64_t c,
                     bool bf16_act, bool round_bf16, cudaStream_t s) {
  if (bf16_act) {
    rmsnorm_forward_impl<__nv_bfloat16>(out, rstd, x, w, n, c, round_bf16, s);
  } else {
    rmsnorm_forward_impl<float>(out, rstd, x, w, n, c, round_bf16, s);
  }
}

template <class T>
static void rmsnorm_backward_impl(void* dx, float* dw, const void* dout, const void* x,
                                  const float* w, const float* rstd, int64_t n, int64_t c,
                                  OpsScratch& scratch, cudaStream_t s) {
  const T* g = static_cast<const T*>(dout);
  const T* xv = static_cast<const T*>(x);
  rmsnorm_backward_kernel<T>
      <<<warp_rows_blocks(n), kThreads, 0, s>>>(static_cast<T*>(dx), g, xv, w, rstd, n, c);
  column_sums<T>(dw, nullptr, n, c, scratch, s,
                 [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                   *a = ld(g, i * c + j) * (ld(xv, i * c + j) * rstd[i]);
                   *b2 = 0.0f;
                 });
}

void rmsnorm_backward(void* dx, float* dw, const void* dout, const void* x, const float* w,
                      const float* rstd, int64_t n, int64_t c, bool bf16_act, OpsScratch& scratch,
                      cudaStream_t s) {
  if (bf16_act) {
    rmsnorm_backward_impl<__nv_bfloat16>(dx, dw, dout, x, w, rstd, n, c, scratch, s);
  } else {
    rmsnorm_backward_impl<float>(dx, dw, dout, x, w, rstd, n, c, scratch, s);
  }
}

}  // namespace mx::nn::cuda
