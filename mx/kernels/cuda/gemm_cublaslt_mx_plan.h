// How the MX matrix product of mx_gemm.h maps onto cuBLASLt's block-scaled matmul (Blackwell,
// compute capability 10.0 and newer), or onto its BF16 matmul over dequantized copies of the
// operands (any GPU): every argument cublasLtMatmul will get, decided on the host from the
// shapes, formats and pointers alone, without a GPU.
//
// cuBLASLt is column-major. Our D [M, N] row-major is, read column-major, Dᵀ: an N x M matrix
// with leading dimension N. So cuBLASLt computes Dᵀ = (A·Bᵀ)ᵀ = B·Aᵀ: its m is our N, its n is
// our M, its first operand is our B and its second is our A. Our B [N, K] row-major is, read
// column-major, a K x N matrix with leading dimension K; op T turns it into the N x K factor.
// Our A [M, K] row-major is a K x M column-major matrix, which is Aᵀ as it stands: op N. Both
// operands keep K contiguous ("TN"), the one layout cuBLASLt's FP8/FP4 kernels take, and the
// block scales run along K for both, as the VEC32_UE8M0 mode wants: cuBLASLt's A scales are
// our B's [N, K / 32] matrix, its B scales our A's [M, K / 32] matrix, each swizzled into
// 128 x 4 tiles (mx/core/layout_swizzle.h). Source: cuBLAS documentation, cublasLtMatmul and
// "1D Block Scaling Factors Layout" (https://docs.nvidia.com/cuda/cublas/index.html).
#pragma once

#include <cublasLt.h>

#include <cstdint>
#include <string>

#include "mx/kernels/cuda/mx_gemm.h"

namespace mx::cuda {

// cuBLASLt's own workspace; the cuBLAS documentation recommends 32 MiB on Hopper and newer.
inline constexpr int64_t kLtMxWorkspaceBytes = int64_t{32} << 20;
// Every region of the caller's workspace starts on this boundary.
inline constexpr int64_t kLtMxWorkspaceAlign = 256;

// One operand as cuBLASLt reads it: a column-major rows x cols matrix (leading dimension `ld`
// elements) used through `op`, with VEC32_UE8M0 block scales (block-scaled plans) or none
// (dequantized plans: the operand is a bfloat16 copy in the workspace).
struct LtMxOperand {
  const void* data = nullptr;  // our codes (block-scaled plans)
  MxMatrix source;             // our operand
  int64_t copy_offset = 0;     // dequantized plans: where its bfloat16 copy goes in the workspace
  int64_t copy_bytes = 0;
  cudaDataType_t type = CUDA_R_8F_E4M3;
  cublasOperation_t op = CUBLAS_OP_N;
  uint64_t rows = 0;
  uint64_t cols = 0;
  int64_t ld = 0;
  cublasLtMatmulMatrixScale_t scale_mode = CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
  const uint8_t* scales = nullptr;  // our row-major scales [scale_rows, scale_cols]
  int64_t scale_rows = 0;           // the operand's rows outside K (M or N)
  int64_t scale_cols = 0;           // K / 32
  int64_t scale_padded_rows = 0;    // scale_rows rounded up to 128
  int64_t scale_padded_cols = 0;    // scale_cols rounded up to 4
  int64_t scale_bytes = 0;          // the swizzled matrix, padding included
  int64_t scale_offset = 0;         // where the swizzled matrix goes in the workspace
};

// Where our float32 bias is added. cuBLASLt's FP8/FP4 bias epilogue reads a 16-bit bias (the
// cuBLAS documentation's cublasLtMatmul type tables), which would round ours, so the bias is
// added after the product by a kernel of ours, in float32: D = round(product + bias), as a
// float32 epilogue would compute it.
enum class LtMxBias : uint8_t {
  kNone,
  kAddInPlace,           // float32 D: D += bias
  kAddFromFloatScratch,  // bfloat16 D: cuBLASLt writes float32 to the workspace, then D =
                         // bf16(scratch + bias)
};

struct LtMxPlan {
  // Block-scaled (Blackwell: cuBLASLt reads our codes and scales) or dequantized (any GPU that
  // runs our kernels: both operands decoded to bfloat16 in the workspace, then cuBLASLt's BF16
  // product).
  bool block_scaled = true;
  // cuBLASLt's problem: D_lt (m x n, column-major) = op(a) · op(b), m = our N, n = our M.
  uint64_t m = 0;
  uint64_t n = 0;
  uint64_t k = 0;
  LtMxOperand a;  // our B
  LtMxOperand b;  // our A
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale_type = CUDA_R_32F;  // alpha = 1, beta = 0
  // What cuBLASLt writes (C has the same layout; beta = 0 so it is not read): m x n, leading
  // dimension ldd = our N, either our D or float32 scratch in the workspace.
  cudaDataType_t d_type = CUDA_R_32F;
  int64_t ldd = 0;
  bool d_in_scratch = false;
  int64_t scratch_offset = 0;
  int64_t scratch_bytes = 0;
  LtMxBias bias = LtMxBias::kNone;
  // cuBLASLt's own workspace inside the caller's.
  int64_t lt_workspace_offset = 0;
  int64_t lt_workspace_bytes = 0;
  int64_t workspace_bytes = 0;  // all of the caller's workspace that the product uses
};

// The plan for `args`, or, when cuBLASLt's block-scaled path cannot run them, a default plan
// and a one-line reason in `why`. Looks at no device.
LtMxPlan plan_blackwell_mx_gemm(const MxGemmArgs& args, std::string* why);

// The plan of the two-pass route for `args`: each operand dequantized to bfloat16 (exact, as the
// fused kernels' decode, but for the tiny values docs/NUMERICS.md lists) into the workspace, then
// cuBLASLt's BF16 product with float32 accumulation; any pair of formats and any K. Or a default
// plan and a one-line reason in `why`. Looks at no device.
LtMxPlan plan_dequantized_mx_gemm(const MxGemmArgs& args, std::string* why);

// The cuBLASLt type of an MX format's codes; false for formats the block-scaled path lacks.
bool lt_mx_element_type(ElementFormat format, cudaDataType_t* type);

}  // namespace mx::cuda
