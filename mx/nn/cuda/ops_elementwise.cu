// The CUDA backend's element-wise ops: GELU, SwiGLU, residual adds, RoPE, biases and the
// conversions between float32 and bfloat16.
#include "mx/nn/cuda/ops_common.cuh"

namespace mx::nn::cuda {

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

// The bias gradient's partial sums over bfloat16 rows of n % 8 == 0 values, 16-byte aligned, in
// column_sums' partials layout over chunks of kBiasRowsPerChunk rows: a block takes one chunk
// and 32 groups of 8 neighbouring columns, a lane one group (one 16-byte vector a row), warp w
// the chunk's rows 4w .. 4w + 3 in order; then the block adds its warps' sums in order. The
// dual cast's column sums (fake_quantize_dual_cuda) take the same order, so that either gives
// the same gradient.
constexpr int kBiasWarps = kThreads / 32;
constexpr int64_t kBiasRowsPerChunk = 32;
constexpr int kBiasRowsPerWarp = int(kBiasRowsPerChunk) / kBiasWarps;
static_assert(kBiasRowsPerChunk <= kRowsPerChunk, "column_partials_floats sizes the partials");

__global__ void __launch_bounds__(kThreads)
    bias_partials_bf16_kernel(float* partials, const uint4* dy, int64_t m, int64_t n) {
  __shared__ float sums[kBiasWarps][32 * 8];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t groups = n / 8, group = int64_t(blockIdx.x) * 32 + lane;
  const int64_t chunk = blockIdx.y, first = chunk * kBiasRowsPerChunk + warp * kBiasRowsPerWarp;
  float sum[8] = {};
  if (group < groups) {
    uint4 rows[kBiasRowsPerWarp];
#pragma unroll
    for (int r = 0; r < kBiasRowsPerWarp; ++r) {
      rows[r] = first + r < m ? dy[(first + r) * groups + group] : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int r = 0; r < kBiasRowsPerWarp; ++r) {
      const uint32_t w[4] = {rows[r].x, rows[r].y, rows[r].z, rows[r].w};
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        sum[2 * u] += bf16_lo(w[u]);
        sum[2 * u + 1] += bf16_hi(w[u]);
      }
    }
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) sums[warp][lane * 8 + e] = sum[e];
  __syncthreads();
  // Thread t: column 8 (32 blockIdx.x) + t of the block's 256.
  const int64_t column = int64_t(blockIdx.x) * 256 + threadIdx.x;
  if (column >= n) return;
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kBiasWarps; ++w) total += sums[w][threadIdx.x];
  partials[chunk * n + column] = total;
}

template <class T>
static void bias_grad_impl(float* dbias, const void* dy, int64_t m, int64_t n, OpsScratch& scratch,
                           cudaStream_t s) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (takes_pieces(n, {dy})) {
      const int64_t chunks = (m + kBiasRowsPerChunk - 1) / kBiasRowsPerChunk;
      const dim3 grid(unsigned((n / 8 + 31) / 32), unsigned(chunks));
      bias_partials_bf16_kernel<<<grid, kThreads, 0, s>>>(scratch.partials,
                                                          static_cast<const uint4*>(dy), m, n);
      finish_column_sums(dbias, nullptr, chunks, n, scratch, s);
      return;
    }
  }
  const T* g = static_cast<const T*>(dy);
  column_sums<T>(dbias, nullptr, m, n, scratch, s,
                 [=] __device__(int64_t i, int64_t j, float* a, float* b2) {
                   *a = ld(g, i * n + j);
                   *b2 = 0.0f;
                 });
}

void sum_column_partials(float* out, const float* partials, int64_t chunks, int64_t c,
                         cudaStream_t s) {
  finish_column_sums_of(out, partials, chunks, c, s);
}

void bias_grad_from_tile_sums(float* dbias, int64_t m, int64_t n, const OpsScratch& scratch,
                              cudaStream_t s) {
  finish_column_sums(dbias, nullptr, (m + kBiasRowsPerChunk - 1) / kBiasRowsPerChunk, n, scratch,
                     s);
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

// One block per segment: the segments are a model's biases, a few thousand values each.
__global__ void f32_to_bf16_segments_kernel(const Bf16Segment* segments) {
  const Bf16Segment g = segments[blockIdx.x];
  __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(g.out);
  for (int64_t i = threadIdx.x; i < g.count; i += blockDim.x) o[i] = __float2bfloat16_rn(g.in[i]);
}

void f32_to_bf16_segments(const Bf16Segment* segments, int64_t n_segments, cudaStream_t s) {
  if (n_segments > 0) {
    f32_to_bf16_segments_kernel<<<unsigned(n_segments), kThreads, 0, s>>>(segments);
  }
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

}  // namespace mx::nn::cuda
