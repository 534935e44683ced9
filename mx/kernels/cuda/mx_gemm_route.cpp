#include "mx/kernels/cuda/mx_gemm_route.h"

#include "mx/kernels/cuda/gemm_cublaslt_mx.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx_plan.h"

namespace mx::cuda {

namespace {

std::string capability(int major, int minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace

const char* mx_gemm_route_name(MxGemmRoute route) {
  switch (route) {
    case MxGemmRoute::kBlockScaled:
      return "block-scaled cuBLASLt";
    case MxGemmRoute::kDequantized:
      return "dequantized + cuBLASLt BF16";
    case MxGemmRoute::kFused:
      return "fused";
    default:
      return "none";
  }
}

MxGemmRoute choose_mx_gemm_route(const MxGemmArgs& args, int major, int minor, std::string* why) {
  why->clear();
  if (major >= 10) {
    std::string block_scaled_why;
    plan_blackwell_mx_gemm(args, &block_scaled_why);
    if (block_scaled_why.empty()) return MxGemmRoute::kBlockScaled;
  }
  std::string dequantized_why;
  if (major >= 9) {
    plan_dequantized_mx_gemm(args, &dequantized_why);
    if (dequantized_why.empty()) return MxGemmRoute::kDequantized;
  }
  if (major == 9 && minor == 0) return MxGemmRoute::kFused;
  *why = major < 9 ? "MX products need compute capability 9.0 or newer, this GPU is " +
                         capability(major, minor)
                   : "no MX product route takes these arguments on compute capability " +
                         capability(major, minor) + ": " + dequantized_why;
  return MxGemmRoute::kNone;
}

MxGemmRoute mx_gemm_auto_route(const MxGemmArgs& args, std::string* why) {
  int major = 0, minor = 0;
  if (!current_compute_capability(&major, &minor)) {
    *why = "mx_gemm_auto: no CUDA device";
    return MxGemmRoute::kNone;
  }
  return choose_mx_gemm_route(args, major, minor, why);
}

size_t mx_gemm_auto_workspace_bytes(const MxGemmArgs& args) {
  std::string why;
  switch (mx_gemm_auto_route(args, &why)) {
    case MxGemmRoute::kBlockScaled:
      return mx_gemm_cublaslt_workspace_bytes(args);
    case MxGemmRoute::kDequantized:
      return mx_gemm_dequantized_workspace_bytes(args);
    default:
      return 0;
  }
}

std::string mx_gemm_auto(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                         cublasLtHandle_t lt, cudaStream_t stream) {
  std::string why;
  switch (mx_gemm_auto_route(args, &why)) {
    case MxGemmRoute::kBlockScaled:
      return mx_gemm_cublaslt(args, workspace, workspace_bytes, lt, stream);
    case MxGemmRoute::kDequantized:
      return mx_gemm_dequantized(args, workspace, workspace_bytes, lt, stream);
    case MxGemmRoute::kFused:
      return mx_gemm_cuda(args, stream);
    default:
      return why;
  }
}

}  // namespace mx::cuda
