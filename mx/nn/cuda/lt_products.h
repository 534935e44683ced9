// The CUDA backend's matrix products through cuBLASLt (cuda_backend_linear.cpp): one handle and one
// workspace, operands of the activation type, float32 accumulation (TF32 on request for float32
// operands), and each shape's algorithm asked of cuBLASLt's heuristic once.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/nn/buf.h"

namespace mx::nn::cuda {

class LtProducts {
 public:
  // What the product does to its float32 result before the one rounding to C's type. The GELU
  // forms are GPT-2's tanh approximation; `aux` is a matrix of C's shape, type and leading
  // dimension: the GELU's input, written by the forward forms and read by kDgelu.
  enum class Epilogue : uint8_t {
    kNone,
    kBias,         // + bias[m] on every column
    kGeluAux,      // aux = result, C = gelu(result)
    kGeluAuxBias,  // aux = result + bias, C = gelu(aux)
    kDgelu,        // C = gelu'(aux) * result
  };

  // Column-major C[m,n] = op(A) op(B) + beta C, then the epilogue; A and B with leading
  // dimensions lda and ldb, C with ldc.
  struct Shape {
    bool trans_a, trans_b;
    int64_t m, n, k, lda, ldb, ldc;
    BufType c_type;
    bool accumulate;
    Epilogue epilogue;
    auto operator<=>(const Shape&) const = default;
  };

  // Products on `stream` of operands of `ab_type`; null (and *error) where cuBLASLt, its handle
  // or its workspace is not to be had.
  static std::unique_ptr<LtProducts> create(cudaStream_t stream, BufType ab_type, bool tf32,
                                            std::string* error);
  ~LtProducts();
  LtProducts(const LtProducts&) = delete;
  LtProducts& operator=(const LtProducts&) = delete;

  // One product; `bias` (of C's type) and `aux` as the epilogue takes them. With `c_in`, beta
  // scales that matrix (C's shape, type and leading dimension) instead of C's own values. False
  // where cuBLASLt offers no algorithm for the shape and epilogue, or refuses the call.
  bool run(const Shape& shape, const void* a, const void* b, void* c, float beta, const void* bias,
           void* aux = nullptr, const void* c_in = nullptr);

  // The handle, for other cuBLASLt calls on the same stream (the MX products).
  cublasLtHandle_t handle() const { return handle_; }

 private:
  LtProducts(const mx::cuda::CublasLt& api, cublasLtHandle_t handle, void* workspace,
             cudaStream_t stream, BufType ab_type, bool tf32)
      : api_(api),
        handle_(handle),
        workspace_(workspace),
        stream_(stream),
        ab_type_(ab_type),
        tf32_(tf32) {}
  const cublasLtMatmulAlgo_t* algorithm(const Shape& g, cublasLtMatmulDesc_t desc,
                                        cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                        cublasLtMatrixLayout_t lc);

  const mx::cuda::CublasLt& api_;
  cublasLtHandle_t handle_;
  void* workspace_;
  cudaStream_t stream_;
  BufType ab_type_;
  bool tf32_;
  std::map<Shape, std::optional<cublasLtMatmulAlgo_t>> algorithms_;
};

}  // namespace mx::nn::cuda
