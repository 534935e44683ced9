// The MX matrix product of mx_gemm.h through cuBLASLt's block-scaled matmul, on GPUs of
// compute capability 10.0 and newer (Blackwell). The mapping is gemm_cublaslt_mx_plan.h's.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

// Device workspace bytes that mx_gemm_cublaslt needs for `args` (swizzled scales, float32
// scratch when a bias meets a bfloat16 output, cuBLASLt's own workspace); 0 when the
// block-scaled path cannot run `args` at all.
size_t mx_gemm_cublaslt_workspace_bytes(const MxGemmArgs& args);

// D = A · Bᵀ (+ bias): swizzles both scale matrices into `workspace` (256-byte aligned, at
// least mx_gemm_cublaslt_workspace_bytes(args)) and calls cublasLtMatmul on `stream`.
// On a device older than compute capability 10.0, for arguments the path does not take, or where
// cuBLASLt cannot be loaded (cublaslt_loader.h), it returns a one-line reason without launching
// anything. `lt` may come from cublaslt()->create, which needs no link to cuBLASLt.
std::string mx_gemm_cublaslt(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                             cublasLtHandle_t lt, cudaStream_t stream);

}  // namespace mx::cuda
