// One entry point for the MX matrix product of mx_gemm.h that takes the fastest route the GPU
// has for the arguments, chosen at run time from its compute capability:
//
//   1. Blackwell and newer (10.0+): cuBLASLt's block-scaled product, where cuBLASLt takes the
//      pair of formats and the shapes (mx_gemm_cublaslt);
//   2. Hopper and newer: both operands dequantized to bfloat16, then cuBLASLt's BF16 product
//      (mx_gemm_dequantized), 2.1-5.0x faster than the fused kernel on an H200 at the
//      benchmark's shapes (docs/PERFORMANCE.md);
//   3. Hopper (9.0): the fused kernel that decodes in its main loop (mx_gemm_cuda), which needs
//      no workspace and takes every shape the others refuse.
//
// All three compute the float32 product of the decoded operands (docs/NUMERICS.md §19); they
// differ in the order of additions.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

enum class MxGemmRoute { kNone, kBlockScaled, kDequantized, kFused };

// "block-scaled cuBLASLt", "dequantized + cuBLASLt BF16", "fused", "none".
const char* mx_gemm_route_name(MxGemmRoute route);

// The route for `args` on a GPU of compute capability major.minor; kNone and a one-line reason
// in `why` where none can run them. Looks at no device.
MxGemmRoute choose_mx_gemm_route(const MxGemmArgs& args, int major, int minor, std::string* why);

// The route for `args` on the current device, and the workspace bytes it needs (0 for the fused
// route, and for kNone).
MxGemmRoute mx_gemm_auto_route(const MxGemmArgs& args, std::string* why);
size_t mx_gemm_auto_workspace_bytes(const MxGemmArgs& args);

// D = A · Bᵀ (+ bias) by the current device's route. `workspace` (256-byte aligned, at least
// mx_gemm_auto_workspace_bytes(args)) and `lt` (cublaslt()->create) serve the cuBLASLt routes;
// the fused route ignores them. A non-empty string is a one-line reason, and nothing was
// launched.
std::string mx_gemm_auto(const MxGemmArgs& args, void* workspace, size_t workspace_bytes,
                         cublasLtHandle_t lt, cudaStream_t stream);

}  // namespace mx::cuda
