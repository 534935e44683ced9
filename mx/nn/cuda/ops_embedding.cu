// The CUDA backend's embedding: the forward gather and the backward's fixed-order sums (the
// tokens sorted, each token's rows added in position order).
#include "mx/nn/cuda/ops_common.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace mx::nn::cuda {
namespace {

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

}  // namespace

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

}  // namespace mx::nn::cuda
