// Checks the arguments of an MX matrix product and picks the kernel for the device.
#include "mx/kernels/cuda/mx_gemm.h"

#include <cuda_runtime_api.h>

#include "mx/kernels/cuda/gemm_mx_bf16.h"
#include "mx/kernels/cuda/gemm_mxfp8_fp8.h"

namespace mx::cuda {

namespace {

std::string check_args(const MxGemmArgs& args, const std::string& name) {
  if (args.m < 0 || args.n < 0 || args.k < 0) return name + ": negative dimension";
  if (args.m > int64_t(1) << 31 || args.n > int64_t(1) << 31) {
    return name + ": M and N must be at most 2^31";
  }
  if (args.out_dtype != DType::kF32 && args.out_dtype != DType::kBF16) {
    return name + ": output must be float32 or bfloat16";
  }
  if (args.m == 0 || args.n == 0) return {};
  if (!args.d) return name + ": null output";
  if (args.k > 0 && (!args.a.elements || !args.a.scales || !args.b.elements || !args.b.scales)) {
    return name + ": null operand buffer";
  }
  return {};
}

std::string needs_hopper(const std::string& name, int major, int minor) {
  return name + ": the MX kernels need a Hopper GPU (compute capability 9.0); this one is " +
         std::to_string(major) + "." + std::to_string(minor);
}

// "" when the current device is a Hopper GPU, else why `name` cannot run here.
std::string hopper_or_reason(const std::string& name) {
  int major = 0, minor = 0;
  if (!current_compute_capability(&major, &minor)) return name + ": no CUDA device";
  return major == 9 && minor == 0 ? "" : needs_hopper(name, major, minor);
}

bool is_fp8(ElementFormat f) {
  return f == ElementFormat::kE4M3 || f == ElementFormat::kE5M2;
}

}  // namespace

bool current_compute_capability(int* major, int* minor) {
  int device = 0;
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
      cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess) {
    return true;
  }
  cudaGetLastError();
  return false;
}

std::string mx_gemm_fp8_cuda(const MxGemmArgs& args, cudaStream_t stream) {
  if (auto e = check_args(args, "mx_gemm_fp8"); !e.empty()) return e;
  if (!is_fp8(args.a.format) || !is_fp8(args.b.format)) {
    return "mx_gemm_fp8: operands must be MXFP8 (E4M3 or E5M2), not " +
           std::string(traits(args.a.format).name) + " x " +
           std::string(traits(args.b.format).name);
  }
  if (args.m == 0 || args.n == 0) return {};
  if (auto e = hopper_or_reason("mx_gemm_fp8"); !e.empty()) return e;
  return launch_mxfp8_gemm_fp8_hopper(args, stream);
}

std::string mx_gemm_cuda(const MxGemmArgs& args, cudaStream_t stream) {
  if (auto e = check_args(args, "mx_gemm"); !e.empty()) return e;
  if (args.m == 0 || args.n == 0) return {};
  int major = 0, minor = 0;
  if (!current_compute_capability(&major, &minor)) return "mx_gemm: no CUDA device";
  if (major == 9 && minor == 0) return launch_mx_gemm_bf16_hopper(args, stream);
  if (major >= 10) {
    return "mx_gemm: this GPU (compute capability " + std::to_string(major) + "." +
           std::to_string(minor) +
           ") multiplies MXFP8/MXFP4 through cuBLASLt: use mx_gemm_cublaslt (gemm_cublaslt_mx.h)";
  }
  return needs_hopper("mx_gemm", major, minor);
}

}  // namespace mx::cuda
