#include "mx/kernels/cuda/gemm_cublaslt_mx.h"

#include <array>
#include <cstdint>
#include <map>
#include <mutex>

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

// The largest power of two up to 256 that divides p's address: what cuBLASLt may assume of a
// matrix's alignment (its preferences default to 256 bytes, which a caller's output need not be).
uint32_t alignment_bytes(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t bytes = 256;
  while (bytes > 1 && address % bytes != 0) bytes /= 2;
  return bytes;
}

// cuBLASLt's heuristic query is host work that a small product's time cannot hide, and its answer
// depends only on the problem's description: it is asked once per device and description.
using AlgoKey = std::array<int64_t, 24>;

AlgoKey algo_key(const LtMxPlan& p, int device, uint32_t a_align, uint32_t b_align,
                 uint32_t d_align) {
  return {device,
          int64_t(p.block_scaled),
          int64_t(p.compute),
          int64_t(p.scale_type),
          int64_t(p.a.op),
          int64_t(p.b.op),
          int64_t(p.a.scale_mode),
          int64_t(p.b.scale_mode),
          int64_t(p.a.type),
          int64_t(p.a.rows),
          int64_t(p.a.cols),
          p.a.ld,
          int64_t(p.b.type),
          int64_t(p.b.rows),
          int64_t(p.b.cols),
          p.b.ld,
          int64_t(p.d_type),
          int64_t(p.m),
          int64_t(p.n),
          p.ldd,
          p.lt_workspace_bytes,
          a_align,
          b_align,
          d_align};
}

struct AlgoCache {
  std::mutex mutex;
  std::map<AlgoKey, cublasLtMatmulAlgo_t> algos;
};

AlgoCache& algo_cache() {
  static AlgoCache cache;
  return cache;
}

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
  const void* a = p.block_scaled ? p.a.data : ws + p.a.copy_offset;
  const void* b = p.block_scaled ? p.b.data : ws + p.b.copy_offset;
  const uint32_t a_align = alignment_bytes(a), b_align = alignment_bytes(b);
  const uint32_t d_align = alignment_bytes(d);
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) return "cuBLASLt MX product: no current CUDA device";
  const AlgoKey key = algo_key(p, device, a_align, b_align, d_align);
  cublasLtMatmulAlgo_t algo{};
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(algo_cache().mutex);
    const auto it = algo_cache().algos.find(key);
    if (it != algo_cache().algos.end()) {
      algo = it->second;
      known = true;
    }
  }
  if (!known) {
    s = api.preference_create(&x.pref);
    if (s == CUBLAS_STATUS_SUCCESS) {
      s = api.preference_set_attribute(x.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt_bytes,
                                       sizeof lt_bytes);
    }
    for (auto [attribute, bytes] :
         {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, a_align},
          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, b_align},
          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, d_align},
          std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, d_align}}) {
      if (s == CUBLAS_STATUS_SUCCESS) {
        s = api.preference_set_attribute(x.pref, attribute, &bytes, sizeof bytes);
      }
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
    algo = heuristic.algo;
    std::lock_guard<std::mutex> lock(algo_cache().mutex);
    algo_cache().algos.emplace(key, algo);
  }
  const float alpha = 1.0f, beta = 0.0f;
  s = api.matmul(lt, x.op, &alpha, a, x.a, b, x.b, &beta, d, x.d, d, x.d, &algo,
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
