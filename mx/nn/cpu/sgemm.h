// FP32 matrix products for the CPU backend: the layouts its layers use, on the cache-blocked
// product of mx/kernels/cpu/sgemm.h. Each output element is one chain of fused multiply-adds in
// reduction order, so results are the same for any thread count and any instruction set. The
// count (0: all hardware threads) is the caller's to pass on, as `--threads` asks.
#pragma once

#include <cstdint>

namespace mx::nn::cpu {

// C[M,N] (+)= A[M,K] * B[N,K]^T
void sgemm_nt(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads);
// C[M,N] (+)= A[M,K] * B[K,N]
void sgemm_nn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads);
// C[M,N] (+)= A[K,M]^T * B[K,N]
void sgemm_tn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads);

// The same three products with each matrix's rows lda, ldb and ldc floats apart, such as one
// head's rows inside a [T, heads, hs] tensor: the bits of the products above on contiguous
// copies of those rows (the kernels' order of operations depends on M, K and N alone).
void sgemm_nt_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads);
void sgemm_nn_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads);
void sgemm_tn_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads);

}  // namespace mx::nn::cpu
