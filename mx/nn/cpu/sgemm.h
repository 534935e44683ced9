// FP32 matrix products for the CPU backend: the layouts its layers use, on the cache-blocked
// product of mx/kernels/cpu/sgemm.h. Each output element is one chain of fused multiply-adds in
// reduction order, so results are the same for any thread count and any instruction set.
#pragma once

#include <cstdint>

namespace mx::nn::cpu {

// C[M,N] (+)= A[M,K] * B[N,K]^T
void sgemm_nt(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads = 0);
// C[M,N] (+)= A[M,K] * B[K,N]
void sgemm_nn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads = 0);
// C[M,N] (+)= A[K,M]^T * B[K,N]
void sgemm_tn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads = 0);

}  // namespace mx::nn::cpu
