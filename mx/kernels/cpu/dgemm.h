// FP64 matrix products for the factorizations of post-training quantization (mx/ptq/cholesky.h):
// C[M, N] += A[M, K] B[K, N], every matrix row-major through its row stride, on the calling
// thread (callers split the work between threads).
//
// Every element of C continues one chain of fused multiply-adds from its old value, over k in
// increasing order. The tiles and the instruction set never change that chain, so the bits are
// the same on every target, and a product split along K into consecutive parts gives the bits
// of the whole.
#pragma once

#include <cstdint>
#include <optional>

#include "mx/kernels/cpu/simd_target.h"

namespace mx::cpu {

void dgemm_accumulate(double* c, int64_t ldc, const double* a, int64_t lda, const double* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n,
                      std::optional<SimdTarget> target = {});

}  // namespace mx::cpu
