// MX matrix products on device buffers: D = A · Bᵀ (+ bias), with A [M, K] and B [N, K] both in
// MX storage with blocks of 32 along K, D [M, N] row-major in float32 or bfloat16.
//
// Storage (mx_tensor.h, QuantSpec with block_size 32 along axis -1): each row holds ceil(K / 32)
// blocks of 32 slots, packed codes block after block (32 * bits / 8 bytes per block), and one
// E8M0 scale byte per block, scales row-major [rows, ceil(K / 32)]. Slots past K are padding;
// the products ignore whatever codes they hold.
//
// All pointers are device pointers; work is enqueued on `stream`; nothing allocates or
// synchronises. A non-empty returned string is a one-line reason, and then nothing was launched.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/format.h"

namespace mx::cuda {

// One MX operand of a product: `rows` x K, blocks of 32 along K.
struct MxMatrix {
  const uint8_t* elements = nullptr;
  const uint8_t* scales = nullptr;
  ElementFormat format = ElementFormat::kE4M3;
};

struct MxGemmArgs {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  MxMatrix a;                     // M x K
  MxMatrix b;                     // N x K
  const float* bias = nullptr;    // N values added to every row of D, or null
  DType out_dtype = DType::kF32;  // float32 or bfloat16
  void* d = nullptr;              // M x N, row-major, leading dimension N
};

// D = A * B^T (+ bias) through bfloat16 tensor cores: every code is decoded to bfloat16 (exact
// except for the tiny values docs/NUMERICS.md lists), products accumulate in float32. Any pair of
// element formats. Runs on Hopper (compute capability 9.0); elsewhere returns a reason.
// Code buffers must be 16-byte aligned (8 for 6- and 2-bit codes; cudaMalloc's are).
std::string mx_gemm_cuda(const MxGemmArgs& args, cudaStream_t stream);

// D = A * B^T (+ bias) for MXFP8 operands (E4M3 or E5M2, in any pairing) through FP8 mma.sync
// (which Hopper runs on its FP16 tensor cores after converting the codes in software): each MX
// block of A meets one of B in one tensor-core product that starts from zero, and its
// partial sums join the float32 accumulators times the two blocks' scales. Exact while every
// partial sum is exact and each block's scaled sum stays a normal float32 (docs/NUMERICS.md);
// otherwise within float32 accumulation error of the FP32 product of the decoded operands.
// Hopper (compute capability 9.0); codes 16-byte aligned.
std::string mx_gemm_fp8_cuda(const MxGemmArgs& args, cudaStream_t stream);

// Weight-only product for small batches: D [M, N] = X [M, K] * W^T (+ bias), X bfloat16
// row-major, W [N, K] in the weight-tile layout (mx/core/layout_weight_tiles.h: to_weight_tiles
// converts from MX storage), any element format, M at most 64. Products accumulate in float32
// per slice of K; the slices' sums are added in a fixed order, so results are the same from run
// to run. Codes 16-byte aligned (8 for 6- and 2-bit codes), scales 16-byte aligned. Hopper
// (thread-block clusters) or newer.
struct MxWeightOnlyArgs {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  const void* x = nullptr;  // M x K bfloat16
  const uint8_t* codes = nullptr;
  const uint8_t* scales = nullptr;
  ElementFormat format = ElementFormat::kE2M1;
  const float* bias = nullptr;
  DType out_dtype = DType::kBF16;
  void* d = nullptr;
};
std::string mx_gemm_weight_only_cuda(const MxWeightOnlyArgs& args, cudaStream_t stream);

// The current device's compute capability; false (the CUDA error cleared) when there is none.
bool current_compute_capability(int* major, int* minor);

// Bytes of one row of scales, and of codes of `format`, for K columns (whole blocks of 32).
inline int64_t mx_row_scale_bytes(int64_t k) {
  return (k + 31) / 32;
}
inline int64_t mx_row_code_bytes(ElementFormat format, int64_t k) {
  return mx_row_scale_bytes(k) * 4 * traits(format).bits;
}

}  // namespace mx::cuda
