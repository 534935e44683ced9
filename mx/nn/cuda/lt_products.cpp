#include "mx/nn/cuda/lt_products.h"

#include <cuda_runtime.h>

namespace mx::nn::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType cuda_type(BufType t) {
  return t == BufType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
}

}  // namespace

std::unique_ptr<LtProducts> LtProducts::create(cudaStream_t stream, BufType ab_type, bool tf32,
                                               std::string* error) {
  const mx::cuda::CublasLt* api = mx::cuda::cublaslt(error);
  if (api == nullptr) return nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  if (api->create(&handle) != CUBLAS_STATUS_SUCCESS ||
      cudaMalloc(&workspace, kWorkspaceBytes) != cudaSuccess) {
    cudaGetLastError();
    *error = "cannot set up the GPU (cuBLASLt or its workspace)";
    if (handle != nullptr) api->destroy(handle);
    return nullptr;
  }
  return std::unique_ptr<LtProducts>(
      new LtProducts(*api, handle, workspace, stream, ab_type, tf32));
}

LtProducts::~LtProducts() {
  cudaFree(workspace_);
  api_.destroy(handle_);
}

// The heuristic's first algorithm for a shape, asked once (the query costs more host time than
// many of the products take on the GPU); nullptr where there is none.
const cublasLtMatmulAlgo_t* LtProducts::algorithm(const Shape& g, cublasLtMatmulDesc_t desc,
                                                  cublasLtMatrixLayout_t la,
                                                  cublasLtMatrixLayout_t lb,
                                                  cublasLtMatrixLayout_t lc) {
  auto [it, inserted] = algorithms_.try_emplace(g);
  if (inserted) {
    cublasLtMatmulPreference_t pref = nullptr;
    const size_t workspace = kWorkspaceBytes;
    cublasLtMatmulHeuristicResult_t heuristic{};
    int found = 0;
    if (api_.preference_create(&pref) == CUBLAS_STATUS_SUCCESS &&
        api_.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                      sizeof workspace) == CUBLAS_STATUS_SUCCESS &&
        api_.algo_get_heuristic(handle_, desc, la, lb, lc, lc, pref, 1, &heuristic, &found) ==
            CUBLAS_STATUS_SUCCESS &&
        found > 0) {
      it->second = heuristic.algo;
    }
    if (pref != nullptr) api_.preference_destroy(pref);
  }
  return it->second ? &*it->second : nullptr;
}

bool LtProducts::run(const Shape& g, const void* a, const void* b, void* c, float beta,
                     const void* bias, void* aux, const void* c_in) {
  const cudaDataType ab = cuda_type(ab_type_), ct = cuda_type(g.c_type);
  const cublasComputeType_t compute =
      ab_type_ == BufType::kF32 && tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const float alpha = 1.0f;
  auto set = [&](cublasLtMatmulDescAttributes_t attribute, const auto& value) {
    return api_.desc_set_attribute(desc, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
  };
  bool ok =
      api_.desc_create(&desc, compute, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
      set(CUBLASLT_MATMUL_DESC_TRANSA, ta) && set(CUBLASLT_MATMUL_DESC_TRANSB, tb) &&
      api_.layout_create(&la, ab, uint64_t(g.trans_a ? g.k : g.m), uint64_t(g.trans_a ? g.m : g.k),
                         g.lda) == CUBLAS_STATUS_SUCCESS &&
      api_.layout_create(&lb, ab, uint64_t(g.trans_b ? g.n : g.k), uint64_t(g.trans_b ? g.k : g.n),
                         g.ldb) == CUBLAS_STATUS_SUCCESS &&
      api_.layout_create(&lc, ct, uint64_t(g.m), uint64_t(g.n), g.ldc) == CUBLAS_STATUS_SUCCESS;
  auto set_bias = [&] {
    return set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias) &&
           set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, ct);
  };
  auto set_aux = [&] {
    return set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux) &&
           set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.ldc);
  };
  if (ok) {
    switch (g.epilogue) {
      case Epilogue::kNone:
        break;
      case Epilogue::kBias:
        ok = set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS) && set_bias();
        break;
      case Epilogue::kGeluAux:
        ok = set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_GELU_AUX) && set_aux();
        break;
      case Epilogue::kGeluAuxBias:
        ok = set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_GELU_AUX_BIAS) && set_bias() &&
             set_aux();
        break;
      case Epilogue::kDgelu:
        ok = set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_DGELU) && set_aux();
        break;
    }
  }
  const cublasLtMatmulAlgo_t* algo = ok ? algorithm(g, desc, la, lb, lc) : nullptr;
  ok = algo != nullptr &&
       api_.matmul(handle_, desc, &alpha, a, la, b, lb, &beta, c_in != nullptr ? c_in : c, lc, c,
                   lc, algo, workspace_, kWorkspaceBytes, stream_) == CUBLAS_STATUS_SUCCESS;
  for (cublasLtMatrixLayout_t l : {la, lb, lc}) {
    if (l != nullptr) api_.layout_destroy(l);
  }
  if (desc != nullptr) api_.desc_destroy(desc);
  return ok;
}

}  // namespace mx::nn::cuda
