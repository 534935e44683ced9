// FP32 matrix products on the CPU, cache-blocked and threaded (docs/NUMERICS.md, "FP32 matrix
// products"): C[M, N] (+)= A[M, K] B[K, N] with A and B read through strides, so each operand
// may be stored either way round.
//
// Every element of C is one chain of fused multiply-adds over k in increasing order, started
// from C's old value (accumulate) or from zero. The blocking, the thread split and the
// instruction set never change that chain, so results are the same for any thread count and on
// any target, and a row of C does not depend on which other rows are computed with it.
#pragma once

#include <cstdint>
#include <optional>

#include "mx/kernels/cpu/simd_target.h"

namespace mx::cpu {

// Element (i, j) of a matrix at data[i * row_stride + j * col_stride].
struct StridedMatrix {
  const float* data;
  int64_t row_stride;
  int64_t col_stride;
};

struct SgemmOptions {
  bool accumulate = false;  // C += A B instead of C = A B
  // Only the elements on and above the diagonal (j >= i) are computed, then copied below it:
  // for a symmetric product such as X^T X, half the work. Needs M = N and A B symmetric; the
  // elements below the diagonal end as the transposed ones above, whatever they held.
  bool symmetric = false;
  int threads = 0;                   // 0: all hardware threads
  std::optional<SimdTarget> target;  // default: best_target(); must be supported
};

// C [M, N] row-major (row stride ldc >= N).
void sgemm(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m, int64_t k, int64_t n,
           const SgemmOptions& options = {});

}  // namespace mx::cpu
