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

// Bfloat16 rows of c = 256 V, 16-byte aligned: lane l holds values 8 (32 v + l) .. + 7 of its
// row for v < V, read once in 16-byte vectors and kept in registers for every pass.
template <int V>
struct Bf16Row {
  static constexpr int64_t c = 256 * V;
  uint4 raw[V];
  __device__ void load(const __nv_bfloat16* row, int lane) {
#pragma unroll
    for (int v = 0; v < V; ++v) raw[v] = *reinterpret_cast<const uint4*>(row + col(v, lane));
  }
  __device__ static int64_t col(int v, int lane) {
    return (v * 32 + lane) * 8;
  }
  __device__ float operator()(int v, int e) const {
    const uint32_t w = (&raw[v].x)[e / 2];
    return e % 2 == 0 ? bf16_lo(w) : bf16_hi(w);
  }
};

// Eight float32 values from 16-byte aligned p, as two 16-byte loads: a lane's weights, which
// scalar loads would fetch at a 32-byte stride across the warp, one element at a time.
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  const float4 lo = reinterpret_cast<const float4*>(p)[0];
  const float4 hi = reinterpret_cast<const float4*>(p)[1];
  v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
  v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
}

// Eight values rounded to bfloat16, stored as one 16-byte vector.
__device__ __forceinline__ void store_bf16x8(__nv_bfloat16* dst, const float (&v)[8]) {
  uint32_t packed[4];
#pragma unroll
  for (int e = 0; e < 8; e += 2) {
    const __nv_bfloat162 pair = __floats2bfloat162_rn(v[e], v[e + 1]);
    memcpy(&packed[e / 2], &pair, sizeof packed[0]);
  }
  *reinterpret_cast<uint4*>(dst) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
}

template <int V>
__global__ void __launch_bounds__(kThreads)
    layernorm_forward_bf16_kernel(__nv_bfloat16* out, float* mean, float* rstd,
                                  const __nv_bfloat16* x, const float* w, const float* b,
                                  int64_t n) {
  constexpr int64_t c = Bf16Row<V>::c;
  const int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  Bf16Row<V> xr;
  xr.load(x + row * c, lane);
  float sum = 0.0f;
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int e = 0; e < 8; ++e) sum += xr(v, e);
  }
  const float m = warp_sum(sum) / float(c);
  float var = 0.0f;
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float d = xr(v, e) - m;
      var += d * d;
    }
  }
  const float r = 1.0f / sqrtf(warp_sum(var) / float(c) + kEps);
#pragma unroll
  for (int v = 0; v < V; ++v) {
    const int64_t col = Bf16Row<V>::col(v, lane);
    float y[8], wv[8], bv[8] = {};
    load8(w + col, wv);
    if (b != nullptr) load8(b + col, bv);
#pragma unroll
    for (int e = 0; e < 8; ++e) y[e] = (xr(v, e) - m) * r * wv[e] + bv[e];
    store_bf16x8(out + row * c + col, y);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
}

// The backward over such rows, adding into dx, with the weight and bias gradients' partial sums
// over each kRowsPerChunk rows (one block's) from the same reads: each warp sums its rows in
// order, then the block sums its warps in order, into the partials layout of column_sums. With
// kSumDx, a third set: the sums of dx's new bfloat16 values (the residual product's bias
// gradient), kept in the warp's row of shared memory rather than in registers, which at 768
// columns spilled. Two blocks an SM (128 registers) up to 768 columns.
constexpr int kWarpsPerBlock = kThreads / 32;

template <int V, bool kSumDx>
__global__ void __launch_bounds__(kThreads, V <= 3 ? 2 : 1)
    layernorm_backward_bf16_kernel(__nv_bfloat16* dx, float* partials, const __nv_bfloat16* dout,
                                   const __nv_bfloat16* x, const float* w, const float* mean,
                                   const float* rstd, int64_t n) {
  constexpr int64_t c = Bf16Row<V>::c;
  static_assert(kRowsPerChunk % kWarpsPerBlock == 0);
  __shared__ __align__(16) float warp_sums[kWarpsPerBlock][c];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t chunk = blockIdx.x, chunks = gridDim.x;
  float dw[V][8] = {}, db[V][8] = {};
  if constexpr (kSumDx) {
    // Each lane's own columns of its warp's row: no other thread touches them before the sums.
#pragma unroll
    for (int v = 0; v < V; ++v) {
#pragma unroll
      for (int e = 0; e < 8; ++e) warp_sums[warp][Bf16Row<V>::col(v, lane) + e] = 0.0f;
    }
  }
  for (int64_t row = chunk * kRowsPerChunk + warp; row < min(n, (chunk + 1) * kRowsPerChunk);
       row += kWarpsPerBlock) {
    const float m = mean[row], r = rstd[row];
    Bf16Row<V> xr, gr, before;  // before: dx's values, read with the others
    xr.load(x + row * c, lane);
    gr.load(dout + row * c, lane);
    before.load(dx + row * c, lane);
    float mg = 0.0f, mgx = 0.0f;
#pragma unroll
    for (int v = 0; v < V; ++v) {
      float wv[8];
      load8(w + Bf16Row<V>::col(v, lane), wv);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float xhat = (xr(v, e) - m) * r, g = gr(v, e) * wv[e];
        mg += g;
        mgx += g * xhat;
        dw[v][e] += gr(v, e) * xhat;
        db[v][e] += gr(v, e);
      }
    }
    mg = warp_sum(mg) / float(c);
    mgx = warp_sum(mgx) / float(c);
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int64_t col = Bf16Row<V>::col(v, lane);
      float sum[8], wv[8];
      load8(w + col, wv);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float xhat = (xr(v, e) - m) * r;
        sum[e] = before(v, e) + r * (gr(v, e) * wv[e] - mg - xhat * mgx);
      }
      if constexpr (kSumDx) {
        // The values as stored: bfloat16, to nearest even. 16 bytes at a time.
        float4* own = reinterpret_cast<float4*>(&warp_sums[warp][col]);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float4 t = own[h];
          t.x += __bfloat162float(__float2bfloat16_rn(sum[4 * h]));
          t.y += __bfloat162float(__float2bfloat16_rn(sum[4 * h + 1]));
          t.z += __bfloat162float(__float2bfloat16_rn(sum[4 * h + 2]));
          t.w += __bfloat162float(__float2bfloat16_rn(sum[4 * h + 3]));
          own[h] = t;
        }
      }
      store_bf16x8(dx + row * c + col, sum);
    }
  }
  // dx's sums first, as they already lie in shared memory; then the weight's, then the bias'.
  for (int step = kSumDx ? 0 : 1; step < 3; ++step) {
    const int which = (step + 2) % 3;
    if (which != 2) {
#pragma unroll
      for (int v = 0; v < V; ++v) {
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          warp_sums[warp][Bf16Row<V>::col(v, lane) + e] = which == 0 ? dw[v][e] : db[v][e];
        }
      }
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < c; j += kThreads) {
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kWarpsPerBlock; ++k) sum += warp_sums[k][j];
      partials[(which * chunks + chunk) * c + j] = sum;
    }
    __syncthreads();
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
  return 3 * ((n + kRowsPerChunk - 1) / kRowsPerChunk) * c;
}

// Whether bfloat16 rows of width c go to the kernels over 16-byte vectors (Bf16Row), with
// 16-byte aligned weights.
static bool row_vectors(int64_t c, std::initializer_list<const void*> buffers) {
  return c % 256 == 0 && c <= 1024 && takes_pieces(c, buffers);
}

// launch(std::integral_constant<int, V>) for c = 256 V.
template <class Launch>
static void with_row_vectors(int64_t c, Launch launch) {
  switch (c / 256) {
    case 1:
      return launch(std::integral_constant<int, 1>{});
    case 2:
      return launch(std::integral_constant<int, 2>{});
    case 3:
      return launch(std::integral_constant<int, 3>{});
    default:
      return launch(std::integral_constant<int, 4>{});
  }
}

template <class T>
static void layernorm_forward_impl(void* out, float* mean, float* rstd, const void* x,
                                   const float* w, const float* b, int64_t n, int64_t c,
                                   bool round_bf16, cudaStream_t s) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (row_vectors(c, {out, x, w, b})) {
      with_row_vectors(c, [&](auto v) {
        layernorm_forward_bf16_kernel<v.value><<<warp_rows_blocks(n), kThreads, 0, s>>>(
            static_cast<T*>(out), mean, rstd, static_cast<const T*>(x), w, b, n);
      });
      return;
    }
  }
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
static void layernorm_backward_impl(void* dx, float* dw, float* db, float* dx_bias,
                                    const void* dout, const void* x, const float* w,
                                    const float* mean, const float* rstd, int64_t n, int64_t c,
                                    OpsScratch& scratch, cudaStream_t s) {
  const T* g = static_cast<const T*>(dout);
  const T* xv = static_cast<const T*>(x);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (row_vectors(c, {dx, dout, x, w})) {
      const int64_t chunks = (n + kRowsPerChunk - 1) / kRowsPerChunk;
      with_row_vectors(c, [&](auto v) {
        auto* kernel = dx_bias != nullptr ? layernorm_backward_bf16_kernel<v.value, true>
                                          : layernorm_backward_bf16_kernel<v.value, false>;
        kernel<<<unsigned(chunks), kThreads, 0, s>>>(static_cast<T*>(dx), scratch.partials, g, xv,
                                                     w, mean, rstd, n);
      });
      finish_column_sums(dw, db, chunks, c, scratch, s);
      if (dx_bias != nullptr) {
        finish_column_sums_of(dx_bias, scratch.partials + 2 * chunks * c, chunks, c, s);
      }
      return;
    }
  }
  layernorm_backward_kernel<T>
      <<<warp_rows_blocks(n), kThreads, 0, s>>>(static_cast<T*>(dx), g, xv, w, mean, rstd, n, c);
  column_sums<T>(dw, db, n, c, scratch, s,
                 [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                   const float gij = ld(g, i * c + j);
                   *a = gij * ((ld(xv, i * c + j) - mean[i]) * rstd[i]);
                   *b2 = gij;
                 });
  if (dx_bias != nullptr) {
    const T* updated = static_cast<const T*>(dx);
    column_sums<T>(dx_bias, nullptr, n, c, scratch, s,
                   [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                     *a = ld(updated, i * c + j);
                     *b2 = 0.0f;
                   });
  }
}

void layernorm_backward(void* dx, float* dw, float* db, float* dx_bias, const void* dout,
                        const void* x, const float* w, const float* mean, const float* rstd,
                        int64_t n, int64_t c, bool bf16_act, OpsScratch& scratch, cudaStream_t s) {
  if (bf16_act) {
    layernorm_backward_impl<__nv_bfloat16>(dx, dw, db, dx_bias, dout, x, w, mean, rstd, n, c,
                                           scratch, s);
  } else {
    layernorm_backward_impl<float>(dx, dw, db, dx_bias, dout, x, w, mean, rstd, n, c, scratch, s);
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
