// The MX matrix product of mx_gemm.h through cuBLASLt: its block-scaled matmul on GPUs of
// compute capability 10.0 and newer (Blackwell), and, on any GPU that runs our kernels, both
// operands dequantized to bfloat16 and its BF16 matmul. The mapping is gemm_cublaslt_mx_plan.h's.
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

// The two-pass route, on any GPU that runs our kernels (the Hopper targets): both operands
// dequantized to bfloat16 into `workspace` (256-byte aligned, at least
// mx_gemm_dequantized_workspace_bytes(args)), then cuBLASLt's BF16 product with float32
// accumulation and the bias added in float32; any pair of formats, any K. One more pass over the
// operands than a fused product, but on an H200 it runs at 0.66-1.06x cuBLAS BF16 where
// mx_gemm_cuda runs at 0.2-0.4x (docs/PERFORMANCE.md). Results equal the float32 product of the
// decoded operands up to cuBLASLt's summation order. 0 bytes: the route cannot run `args`.
size_t mx_gemm_dequantized_workspace_bytes(const MxGemmArgs& args);
std::string mx_gemm_dequantized(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                                cublasLtHandle_t lt, cudaStream_t stream);

}  // namespace mx::cuda
