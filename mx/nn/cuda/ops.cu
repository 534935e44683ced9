// The CUDA backend's vector ops (ops.h). Each formula is the CPU layer's (mx/nn/cpu/), in
// float32; results differ from the CPU's only by the order of float32 sums and by the
// device's exp/tanh/sqrt, and repeat bit for bit on one GPU: no atomics, fixed reduction trees.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <cub/device/device_radix_sort.cuh>
#include <initializer_list>
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

int blocks_for(int64_t count) {
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

// ---- Embedding ----

template <class T>
__global__ void position_grad_kernel(float* dwpe, const T* dout, int64_t n, int64_t t, int64_t c) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= t * c) return;
  const int64_t p = idx / c, j = idx % c;
  float sum = 0.0f;
  for (int64_t row = p; row < n; row += t) sum += ld(dout, row * c + j);
  dwpe[idx] += sum;
}

__global__ void iota_kernel(uint32_t* v, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) v[i] = uint32_t(i);
}

// One warp per position of the sorted tokens; the first of each run of one token sums the run's
// rows in position order and adds them to that token's row.
// One block per (token run of the sorted keys, 128 columns): the run's rows summed in position
// order. A run's length is data (a frequent token can own thousands of rows), so its rows are
// read four at a time to keep several loads in flight; the sum's order is unchanged.
template <class T>
__global__ void token_grad_kernel(float* dwte, const T* dout, const uint32_t* keys,
                                  const uint32_t* positions, int64_t n, int64_t c) {
  const int64_t i = blockIdx.x;
  const int64_t j = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
  if (j >= c || (i > 0 && keys[i] == keys[i - 1])) return;
  const uint32_t token = keys[i];
  float sum = 0.0f;
  int64_t k = i;
  for (; k + 3 < n && keys[k + 3] == token; k += 4) {  // sorted: k .. k + 3 are all `token`
    const float v0 = ld(dout, int64_t(positions[k]) * c + j);
    const float v1 = ld(dout, int64_t(positions[k + 1]) * c + j);
    const float v2 = ld(dout, int64_t(positions[k + 2]) * c + j);
    const float v3 = ld(dout, int64_t(positions[k + 3]) * c + j);
    sum += v0;
    sum += v1;
    sum += v2;
    sum += v3;
  }
  for (; k < n && keys[k] == token; ++k) sum += ld(dout, int64_t(positions[k]) * c + j);
  dwte[int64_t(token) * c + j] += sum;
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

// One warp per column: lane l sums partials l, l + 32, ..., then the warp's fixed tree.
__global__ void column_finish_kernel(float* out_a, float* out_b, const float* partials,
                                     int64_t chunks, int64_t c) {
  const int64_t j = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (j >= c) return;
  float a = 0.0f, b = 0.0f;
  for (int64_t k = lane; k < chunks; k += 32) {
    a += partials[k * c + j];
    b += partials[(chunks + k) * c + j];
  }
  a = warp_sum(a);
  b = warp_sum(b);
  if (lane != 0) return;
  if (out_a != nullptr) out_a[j] += a;
  if (out_b != nullptr) out_b[j] += b;
}

template <class T, class Terms>
void column_sums(float* out_a, float* out_b, int64_t n, int64_t c, OpsScratch& scratch,
                 cudaStream_t s, Terms terms) {
  const int64_t chunks = (n + kRowsPerChunk - 1) / kRowsPerChunk;
  const dim3 grid(unsigned((c + kThreads - 1) / kThreads), unsigned(chunks));
  column_partials_kernel<T><<<grid, kThreads, 0, s>>>(scratch.partials, n, c, terms);
  column_finish_kernel<<<unsigned((c * 32 + kThreads - 1) / kThreads), kThreads, 0, s>>>(
      out_a, out_b, scratch.partials, chunks, c);
}

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

int64_t column_partials_floats(int64_t n, int64_t c) {
  return 2 * ((n + kRowsPerChunk - 1) / kRowsPerChunk) * c;
}

size_t sort_temp_bytes(int64_t n) {
  size_t bytes = 0;
  cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr), int(n));
  return bytes;
}

template <class T>
static void embedding_forward_impl(void* out, const uint32_t* tokens, const float* wte,
                                   const float* wpe, int64_t n, int64_t t, int64_t c,
                                   cudaStream_t s) {
  T* o = static_cast<T*>(out);
  elementwise(n * c, s, [=] __device__(int64_t idx) {
    const int64_t i = idx / c, j = idx % c;
    float v = wte[int64_t(tokens[i]) * c + j];
    if (wpe != nullptr) v += wpe[(i % t) * c + j];
    st(o, idx, v);
  });
}

void embedding_forward(void* out, const uint32_t* tokens, const float* wte, const float* wpe,
                       int64_t n, int64_t t, int64_t c, bool bf16_act, cudaStream_t s) {
  if (bf16_act) {
    embedding_forward_impl<__nv_bfloat16>(out, tokens, wte, wpe, n, t, c, s);
  } else {
    embedding_forward_impl<float>(out, tokens, wte, wpe, n, t, c, s);
  }
}

template <class T>
static void embedding_backward_impl(float* dwte, float* dwpe, const void* dout,
                                    const uint32_t* tokens, int64_t n, int64_t t, int64_t c,
                                    OpsScratch& scratch, cudaStream_t s) {
  const T* g = static_cast<const T*>(dout);
  if (dwpe != nullptr) {
    position_grad_kernel<T><<<blocks_for(t * c), kThreads, 0, s>>>(dwpe, g, n, t, c);
  }
  uint32_t* positions_in = scratch.sort_values;
  uint32_t* keys_out = scratch.sort_keys;
  uint32_t* positions_out = scratch.sort_values + n;
  iota_kernel<<<blocks_for(n), kThreads, 0, s>>>(positions_in, n);
  size_t bytes = scratch.sort_temp_bytes;
  cub::DeviceRadixSort::SortPairs(scratch.sort_temp, bytes, tokens, keys_out, positions_in,
                                  positions_out, int(n), 0, 32, s);
  token_grad_kernel<T><<<dim3(unsigned(n), unsigned((c + 127) / 128)), 128, 0, s>>>(
      dwte, g, keys_out, positions_out, n, c);
}

void embedding_backward(float* dwte, float* dwpe, const void* dout, const uint32_t* tokens,
                        int64_t n, int64_t t, int64_t c, bool bf16_act, OpsScratch& scratch,
                        cudaStream_t s) {
  if (bf16_act) {
    embedding_backward_impl<__nv_bfloat16>(dwte, dwpe, dout, tokens, n, t, c, scratch, s);
  } else {
    embedding_backward_impl<float>(dwte, dwpe, dout, tokens, n, t, c, scratch, s);
  }
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

// GELU, tanh approximation, and its derivative.
__device__ __forceinline__ float gelu_of(float u) {
  const float k = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * u * (1.0f + tanhf(k * (u + 0.044715f * u * u * u)));
}
__device__ __forceinline__ float gelu_slope(float u) {
  const float k = 0.7978845608028654f;
  const float th = tanhf(k * (u + 0.044715f * u * u * u));
  return 0.5f * (1.0f + th) + 0.5f * u * (1.0f - th * th) * k * (1.0f + 3.0f * 0.044715f * u * u);
}

template <class T>
static void gelu_forward_impl(void* out, const void* x, int64_t count, bool round_bf16,
                              cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* in = static_cast<const T*>(x);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (takes_pieces(count, {out, x})) {
      map_bf16x8<false>(count, out, x, nullptr, s,
                        [] __device__(float u, float) { return gelu_of(u); });
      return;
    }
  }
  map(
      count, s, [=] __device__(int64_t i) { return ld(in, i); },
      [=] __device__(int64_t i, float u) { st(o, i, maybe_bf16(gelu_of(u), round_bf16)); });
}

void gelu_forward(void* out, const void* x, int64_t count, bool bf16_act, bool round_bf16,
                  cudaStream_t s) {
  if (bf16_act) {
    gelu_forward_impl<__nv_bfloat16>(out, x, count, round_bf16, s);
  } else {
    gelu_forward_impl<float>(out, x, count, round_bf16, s);
  }
}

template <class T>
static void gelu_backward_impl(void* dx, const void* x, const void* dout, int64_t count,
                               cudaStream_t s) {
  T* d = static_cast<T*>(dx);
  const T* in = static_cast<const T*>(x);
  const T* g = static_cast<const T*>(dout);
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (takes_pieces(count, {dx, x, dout})) {
      map_bf16x8<true>(count, dx, x, dout, s,
                       [] __device__(float u, float dy) { return gelu_slope(u) * dy; });
      return;
    }
  }
  map(
      count, s,
      [=] __device__(int64_t i) {
        return float2{ld(in, i), ld(g, i)};
      },
      [=] __device__(int64_t i, float2 x) { st(d, i, gelu_slope(x.x) * x.y); });
}

void gelu_backward(void* dx, const void* x, const void* dout, int64_t count, bool bf16_act,
                   cudaStream_t s) {
  if (bf16_act) {
    gelu_backward_impl<__nv_bfloat16>(dx, x, dout, count, s);
  } else {
    gelu_backward_impl<float>(dx, x, dout, count, s);
  }
}

template <class T>
static void swiglu_forward_impl(void* out, const void* gate, const void* up, int64_t count,
                                bool round_bf16, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* ga = static_cast<const T*>(gate);
  const T* u = static_cast<const T*>(up);
  map(
      count, s,
      [=] __device__(int64_t i) {
        return float2{ld(ga, i), ld(u, i)};
      },
      [=] __device__(int64_t i, float2 x) {
        st(o, i, maybe_bf16(x.x / (1.0f + expf(-x.x)) * x.y, round_bf16));
      });
}

void swiglu_forward(void* out, const void* gate, const void* up, int64_t count, bool bf16_act,
                    bool round_bf16, cudaStream_t s) {
  if (bf16_act) {
    swiglu_forward_impl<__nv_bfloat16>(out, gate, up, count, round_bf16, s);
  } else {
    swiglu_forward_impl<float>(out, gate, up, count, round_bf16, s);
  }
}

template <class T>
static void swiglu_backward_impl(void* dgate, void* dup, const void* dout, const void* gate,
                                 const void* up, int64_t count, cudaStream_t s) {
  T* dg = static_cast<T*>(dgate);
  T* du = static_cast<T*>(dup);
  const T* d = static_cast<const T*>(dout);
  const T* ga = static_cast<const T*>(gate);
  const T* u = static_cast<const T*>(up);
  map(
      count, s,
      [=] __device__(int64_t i) {
        return float3{ld(ga, i), ld(d, i), ld(u, i)};
      },
      [=] __device__(int64_t i, float3 x) {
        const float g = x.x, di = x.y, sig = 1.0f / (1.0f + expf(-g));
        st(dg, i, di * x.z * sig * (1.0f + g * (1.0f - sig)));
        st(du, i, di * g * sig);
      });
}

void swiglu_backward(void* dgate, void* dup, const void* dout, const void* gate, const void* up,
                     int64_t count, bool bf16_act, cudaStream_t s) {
  if (bf16_act) {
    swiglu_backward_impl<__nv_bfloat16>(dgate, dup, dout, gate, up, count, s);
  } else {
    swiglu_backward_impl<float>(dgate, dup, dout, gate, up, count, s);
  }
}

template <class T>
static void residual_forward_impl(void* out, const void* a, const void* b, int64_t count,
                                  bool round_bf16, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(a);
  const T* y = static_cast<const T*>(b);
  map(
      count, s,
      [=] __device__(int64_t i) {
        return float2{ld(x, i), ld(y, i)};
      },
      [=] __device__(int64_t i, float2 v) { st(o, i, maybe_bf16(v.x + v.y, round_bf16)); });
}

void residual_forward(void* out, const void* a, const void* b, int64_t count, bool bf16_act,
                      bool round_bf16, cudaStream_t s) {
  if (bf16_act) {
    residual_forward_impl<__nv_bfloat16>(out, a, b, count, round_bf16, s);
  } else {
    residual_forward_impl<float>(out, a, b, count, round_bf16, s);
  }
}

template <class T>
static void rope_impl(void* x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                      int64_t first_position, float sign, bool round_bf16, cudaStream_t s) {
  T* p = static_cast<T*>(x);
  const int64_t pairs = hs / 2;
  elementwise(n * heads * pairs, s, [=] __device__(int64_t idx) {
    const int64_t r = idx / (heads * pairs), h = (idx / pairs) % heads, i = 2 * (idx % pairs);
    const float theta = 1.0f / powf(10000.0f, float(i) / float(hs));
    const float angle = float(first_position + r % t) * theta;
    const float cs = cosf(angle), sn = sign * sinf(angle);
    const int64_t at = (r * heads + h) * hs + i;
    const float a = ld(p, at), b = ld(p, at + 1);
    st(p, at, maybe_bf16(a * cs - b * sn, round_bf16));
    st(p, at + 1, maybe_bf16(a * sn + b * cs, round_bf16));
  });
}

void rope(void* x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
          float sign, bool bf16_act, bool round_bf16, cudaStream_t s) {
  if (bf16_act) {
    rope_impl<__nv_bfloat16>(x, n, t, heads, hs, first_position, sign, round_bf16, s);
  } else {
    rope_impl<float>(x, n, t, heads, hs, first_position, sign, round_bf16, s);
  }
}

template <class T>
static void add_bias_impl(void* y, const float* bias, int64_t m, int64_t n, cudaStream_t s) {
  T* o = static_cast<T*>(y);
  map(
      m * n, s, [=] __device__(int64_t i) { return ld(o, i) + bias[i % n]; },
      [=] __device__(int64_t i, float v) { st(o, i, v); });
}

void add_bias(void* y, const float* bias, int64_t m, int64_t n, bool bf16_act, cudaStream_t s) {
  if (bf16_act) {
    add_bias_impl<__nv_bfloat16>(y, bias, m, n, s);
  } else {
    add_bias_impl<float>(y, bias, m, n, s);
  }
}

template <class T>
static void bias_grad_impl(float* dbias, const void* dy, int64_t m, int64_t n, OpsScratch& scratch,
                           cudaStream_t s) {
  const T* g = static_cast<const T*>(dy);
  column_sums<T>(dbias, nullptr, m, n, scratch, s,
                 [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                   *a = ld(g, i * n + j);
                   *b2 = 0.0f;
                 });
}

void bias_grad(float* dbias, const void* dy, int64_t m, int64_t n, bool bf16_act,
               OpsScratch& scratch, cudaStream_t s) {
  if (bf16_act) {
    bias_grad_impl<__nv_bfloat16>(dbias, dy, m, n, scratch, s);
  } else {
    bias_grad_impl<float>(dbias, dy, m, n, scratch, s);
  }
}

void f32_to_bf16(uint16_t* out, const float* in, int64_t count, cudaStream_t s) {
  __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(out);
  map(
      count, s, [=] __device__(int64_t i) { return in[i]; },
      [=] __device__(int64_t i, float v) { o[i] = __float2bfloat16_rn(v); });
}

void bf16_to_f32(float* out, const uint16_t* in, int64_t count, cudaStream_t s) {
  const __nv_bfloat16* x = reinterpret_cast<const __nv_bfloat16*>(in);
  map(
      count, s, [=] __device__(int64_t i) { return x[i]; },
      [=] __device__(int64_t i, __nv_bfloat16 v) { out[i] = __bfloat162float(v); });
}

template <class T>
static void round_to_bf16_impl(void* out, const void* in, int64_t count, cudaStream_t s) {
  T* o = static_cast<T*>(out);
  const T* x = static_cast<const T*>(in);
  map(
      count, s, [=] __device__(int64_t i) { return ld(x, i); },
      [=] __device__(int64_t i, float v) { st(o, i, maybe_bf16(v, true)); });
}

void round_to_bf16(void* out, const void* in, int64_t count, bool bf16_act, cudaStream_t s) {
  if (bf16_act) {
    round_to_bf16_impl<__nv_bfloat16>(out, in, count, s);
  } else {
    round_to_bf16_impl<float>(out, in, count, s);
  }
}

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

void adamw(float* p, const float* g, float* m, float* v, const uint8_t* decay, int64_t n, float lr,
           float beta1, float beta2, float eps, float weight_decay, float c1, float c2,
           cudaStream_t s) {
  struct State {
    float g, m, v, p;
    bool decays;
  };
  map(
      n, s,
      [=] __device__(int64_t i) {
        return State{g[i], m[i], v[i], p[i], decay[i] != 0};
      },
      [=] __device__(int64_t i, State x) {
        const float mi = beta1 * x.m + (1.0f - beta1) * x.g;
        const float vi = beta2 * x.v + (1.0f - beta2) * x.g * x.g;
        m[i] = mi;
        v[i] = vi;
        const float wd = x.decays ? weight_decay * x.p : 0.0f;
        p[i] = x.p - lr * ((mi / c1) / (sqrtf(vi / c2) + eps) + wd);
      });
}

}  // namespace mx::nn::cuda
