// Matrix products straight from packed MX weights on the CPU: y = x * W^T, with W [N, K] an
// MxTensor in blocks of 32 along K (any element format) and x [M, K] in float32 or bfloat16.
// W is never dequantized to memory: each block is decoded in registers where it is used, so a
// matrix-vector product (M = 1, decoding a language model) reads W's packed bytes once.
//
// Two modes (docs/NUMERICS.md, section "Matrix products from packed weights"):
//   exact  the float32 dot products of x and the dequantized W: every product and sum is a
//          float32 operation, in a fixed order. It equals any other float32 evaluation up to
//          the order of the sums, and is bit-exact wherever the partial sums are exact.
//   fast   x is first quantized to MXINT8 (blocks of 32 along K, FLOOR scales, nearest-even);
//          y is then the OCP dot product of that and W, each pair of blocks an exact integer
//          dot product (AVX-512 VNNI, AVX2 vpmaddubsw) times the two blocks' scales, summed in
//          float32. MXFP8 and MXFP6 E3M2 elements are no int8 integers: for them the product
//          with the quantized x runs in float32 as in exact mode. Its distance from the exact
//          product is bounded in docs/NUMERICS.md.
// In both modes y depends on neither the thread count nor the instruction set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/mx_tensor.h"
#include "mx/kernels/cpu/simd_target.h"

namespace mx::cpu {

enum class MatmulMode { kExact, kFast };

struct MatmulOptions {
  MatmulMode mode = MatmulMode::kExact;
  int threads = 0;  // 0: all hardware threads; threads split the rows of W
  // Fewer threads run where each would get less than this much of W (times the rows of x):
  // waking a thread costs more than a small share saves. The split never changes the bits.
  int64_t min_bytes_per_thread = 64 << 10;
  std::optional<SimdTarget> target;  // default: best_target(); an unsupported one is an error
};

// y[M, N] (row-major float32) = x[M, K] (row-major, float32 or bfloat16) * W[N, K]^T. W must be
// 2-D, symmetric (no block offsets) and blocked along its last axis in blocks of 32. Returns an
// empty string on success, else a one-line reason (and y is left unspecified).
std::string mx_matmul(const MxTensor& w, const void* x, DType x_dtype, int64_t m, float* y,
                      const MatmulOptions& options = {});

}  // namespace mx::cpu
