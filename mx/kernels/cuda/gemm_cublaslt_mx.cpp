#include "mx/kernels/cuda/gemm_cublaslt_mx.h"

#include <cstdint>

#include "mx/kernels/cuda/bias_rows_cuda.h"
#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx_plan.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/kernels/cuda/swizzle_scales_cuda.h"

namespace mx::cuda {

namespace {

std::string device_reason() {
  int major = 0, minor = 0;
  if (!current_compute_capability(&major, &minor)) return "no usable CUDA device";
  if (major < 10) {
    return "cuBLASLt MX block-scaled products need compute capability 10.0 or newer, this GPU is " +
           std::to_string(major) + "." + std::to_string(minor);
  }
  return "";
}

// The descriptors of one product, destroyed together.
struct LtDescriptors {
  const CublasLt& api;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDescriptors() {
    if (pref != nullptr) api.preference_destroy(pref);
    for (cublasLtMatrixLayout_t l : {a, b, d}) {
      if (l != nullptr) api.layout_destroy(l);
    }
    if (op != nullptr) api.desc_destroy(op);
  }
};

std::string run_matmul(const CublasLt& api, const LtMxPlan& p, uint8_t* ws, void* d,
                       cublasLtHandle_t lt, cudaStream_t stream) {
  auto lt_error = [&](const char* what, cublasStatus_t s) {
    return std::string("cuBLASLt ") + what + " failed: " + api.status_string(s);
  };
  LtDescriptors x{api};
  cublasStatus_t s = api.desc_create(&x.op, p.compute, p.scale_type);
  if (s != CUBLAS_STATUS_SUCCESS) return lt_error("matmul descriptor", s);
  auto set = [&](cublasLtMatmulDescAttributes_t attribute, const auto& value) {
    return api.desc_set_attribute(x.op, attribute, &value, sizeof value);
  };
  for (cublasStatus_t r :
       {set(CUBLASLT_MATMUL_DESC_TRANSA, p.a.op), set(CUBLASLT_MATMUL_DESC_TRANSB, p.b.op)}) {
    if (r != CUBLAS_STATUS_SUCCESS) return lt_error("matmul attribute", r);
  }
  if (p.block_scaled) {
    const void* a_scales = ws + p.a.scale_offset;
    const void* b_scales = ws + p.b.scale_offset;
    for (cublasStatus_t r : {set(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, int32_t(p.a.scale_mode)),
                             set(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, int32_t(p.b.scale_mode)),
                             set(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scales),
                             set(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scales)}) {
      if (r != CUBLAS_STATUS_SUCCESS) return lt_error("matmul attribute", r);
    }
  }
  s = api.layout_create(&x.a, p.a.type, p.a.rows, p.a.cols, p.a.ld);
  if (s == CUBLAS_STATUS_SUCCESS) {
    s = api.layout_create(&x.b, p.b.type, p.b.rows, p.b.cols, p.b.ld);
  }
  if (s == CUBLAS_STATUS_SUCCESS) s = api.layout_create(&x.d, p.d_type, p.m, p.n, p.ldd);
  if (s != CUBLAS_STATUS_SUCCESS) return lt_error("matrix layout", s);
  const size_t lt_bytes = size_t(p.lt_workspace_bytes);
  s = api.preference_create(&x.pref);
  if (s == CUBLAS_STATUS_SUCCESS) {
    s = api.preference_set_attribute(x.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt_bytes,
                                     sizeof lt_bytes);
  }
  if (s != CUBLAS_STATUS_SUCCESS) return lt_error("preference", s);
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  s = api.algo_get_heuristic(lt, x.op, x.a, x.b, x.d, x.d, x.pref, 1, &heuristic, &found);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    return std::string("cuBLASLt has no ") + (p.block_scaled ? "block-scaled" : "bfloat16") +
           " algorithm for M, N, K = " + std::to_string(p.n) + ", " + std::to_string(p.m) + ", " +
           std::to_string(p.k) + " (" +
           (s != CUBLAS_STATUS_SUCCESS ? api.status_string(s) : "none found") + ")";
  }
  const float alpha = 1.0f, beta = 0.0f;
  const void* a = p.block_scaled ? p.a.data : ws + p.a.copy_offset;
  const void* b = p.block_scaled ? p.b.data : ws + p.b.copy_offset;
  s = api.matmul(lt, x.op, &alpha, a, x.a, b, x.b, &beta, d, x.d, d, x.d, &heuristic.algo,
                 ws + p.lt_workspace_offset, lt_bytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS) return lt_error("matmul", s);
  return "";
}

// Checks the workspace, prepares the operands (swizzled scales, or bfloat16 copies), multiplies
// and adds the bias.
std::string run_plan(const MxGemmArgs& args, const LtMxPlan& p, void* workspace,
                     size_t workspace_bytes, cublasLtHandle_t lt, cudaStream_t stream) {
  if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % kLtMxWorkspaceAlign != 0) {
    return "cuBLASLt MX product needs a 256-byte aligned workspace";
  }
  if (workspace_bytes < size_t(p.workspace_bytes)) {
    return "cuBLASLt MX product needs " + std::to_string(p.workspace_bytes) +
           " workspace bytes, got " + std::to_string(workspace_bytes);
  }
  if (lt == nullptr) return "null cuBLASLt handle";
  std::string why;
  const CublasLt* api = cublaslt(&why);
  if (api == nullptr) return why;
  uint8_t* ws = static_cast<uint8_t*>(workspace);
  for (const LtMxOperand* o : {&p.a, &p.b}) {
    if (p.block_scaled) {
      why = swizzle_scales_cuda(o->scales, o->scale_rows, o->scale_cols, ws + o->scale_offset,
                                stream);
    } else {
      QuantSpec spec;
      spec.format = o->source.format;
      const int64_t shape[2] = {o->scale_rows, int64_t(o->rows)};
      why = dequantize_cuda(o->source.elements, o->source.scales, nullptr, shape, spec,
                            DType::kBF16, ws + o->copy_offset, stream);
    }
    if (!why.empty()) return why;
  }
  void* d = p.d_in_scratch ? static_cast<void*>(ws + p.scratch_offset) : args.d;
  why = run_matmul(*api, p, ws, d, lt, stream);
  if (!why.empty()) return why;
  if (p.bias == LtMxBias::kNone) return "";
  return add_bias_rows_cuda(static_cast<const float*>(d), args.bias, args.m, args.n, args.out_dtype,
                            args.d, stream);
}

// The workspace of `plan`'s product for args, 0 where the plan refuses them.
using Planner = LtMxPlan (*)(const MxGemmArgs&, std::string*);
size_t planned_workspace_bytes(Planner plan, const MxGemmArgs& args) {
  std::string why;
  const LtMxPlan p = plan(args, &why);
  return why.empty() ? size_t(p.workspace_bytes) : 0;
}

}  // namespace

size_t mx_gemm_cublaslt_workspace_bytes(const MxGemmArgs& args) {
  return planned_workspace_bytes(plan_blackwell_mx_gemm, args);
}

std::string mx_gemm_cublaslt(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                             cublasLtHandle_t lt, cudaStream_t stream) {
  std::string why;
  const LtMxPlan p = plan_blackwell_mx_gemm(args, &why);
  if (why.empty()) why = device_reason();
  return why.empty() ? run_plan(args, p, workspace, workspace_bytes, lt, stream) : why;
}

size_t mx_gemm_dequantized_workspace_bytes(const MxGemmArgs& args) {
  return planned_workspace_bytes(plan_dequantized_mx_gemm, args);
}

std::string mx_gemm_dequantized(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                                cublasLtHandle_t lt, cudaStream_t stream) {
  std::string why;
  const LtMxPlan p = plan_dequantized_mx_gemm(args, &why);
  return why.empty() ? run_plan(args, p, workspace, workspace_bytes, lt, stream) : why;
}

}  // namespace mx::cuda
