#include "mx/kernels/cuda/bias_rows_cuda.h"

#include <algorithm>

#include "mx/kernels/cuda/codec.cuh"

namespace mx::cuda {

namespace {

constexpr int kThreads = 256;

template <bool kBf16>
__global__ void add_bias_rows_kernel(const float* in, const float* __restrict__ bias, int64_t n,
                                     int64_t count, void* out) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = __fadd_rn(in[i], bias[i % n]);
    if constexpr (kBf16) {
      static_cast<uint16_t*>(out)[i] = f32_to_bf16_bits(v);
    } else {
      static_cast<float*>(out)[i] = v;
    }
  }
}

}  // namespace

std::string add_bias_rows_cuda(const float* in, const float* bias, int64_t m, int64_t n,
                               DType out_dtype, void* out, cudaStream_t stream) {
  if (m < 0 || n < 0) return "negative matrix dimension";
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "bias rows are written as float32 or bfloat16, not " +
           std::string(dtype_name(out_dtype));
  }
  const int64_t count = m * n;
  if (count == 0) return "";
  if (in == nullptr || bias == nullptr || out == nullptr) return "null pointer for the bias rows";
  const int64_t blocks = std::min<int64_t>((count + kThreads - 1) / kThreads, int64_t{1} << 20);
  if (out_dtype == DType::kBF16) {
    add_bias_rows_kernel<true><<<unsigned(blocks), kThreads, 0, stream>>>(in, bias, n, count, out);
  } else {
    add_bias_rows_kernel<false><<<unsigned(blocks), kThreads, 0, stream>>>(in, bias, n, count, out);
  }
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string("bias rows launch failed: ") + cudaGetErrorString(e);
  return "";
}

}  // namespace mx::cuda
