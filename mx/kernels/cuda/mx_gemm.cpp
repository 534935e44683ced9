// Checks the arguments of an MX matrix product and picks the kernel for the device.
#include "mx/kernels/cuda/mx_gemm.h"

#include <cuda_runtime_api.h>

#include "mx/kernels/cuda/gemm_mx_bf16.h"

namespace mx::cuda {

namespace {

std::string check_args(const MxGemmArgs& args) {
  if (args.m < 0 || args.n < 0 || args.k < 0) return "mx_gemm: negative dimension";
  if (args.m > int64_t(1) << 31 || args.n > int64_t(1) << 31) {
    return "mx_gemm: M and N must be at most 2^31";
  }
  if (args.out_dtype != DType::kF32 && args.out_dtype != DType::kBF16) {
    return "mx_gemm: output must be float32 or bfloat16";
  }
  if (args.m == 0 || args.n == 0) return {};
  if (!args.d) return "mx_gemm: null output";
  if (args.k > 0 && (!args.a.elements || !args.a.scales || !args.b.elements || !args.b.scales)) {
    return "mx_gemm: null operand buffer";
  }
  return {};
}

}  // namespace

std::string mx_gemm_cuda(const MxGemmArgs& args, cudaStream_t stream) {
  if (auto e = check_args(args); !e.empty()) return e;
  if (args.m == 0 || args.n == 0) return {};
  int device = 0;
  int major = 0;
  int minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    return "mx_gemm: no CUDA device";
  }
  if (major == 9 && minor == 0) return launch_mx_gemm_bf16_hopper(args, stream);
  if (major >= 10) {
    return "mx_gemm: this GPU (compute capability " + std::to_string(major) + "." +
           std::to_string(minor) +
           ") multiplies MXFP8/MXFP4 through cuBLASLt: use mx_gemm_cublaslt (gemm_cublaslt_mx.h)";
  }
  return "mx_gemm: the MX kernels need a Hopper GPU (compute capability 9.0); this one is " +
         std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace mx::cuda
