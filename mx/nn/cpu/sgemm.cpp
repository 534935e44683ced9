#include "mx/nn/cpu/sgemm.h"

#include "mx/kernels/cpu/sgemm.h"

namespace mx::nn::cpu {

using mx::cpu::SgemmOptions;
using mx::cpu::StridedMatrix;

namespace {

SgemmOptions options(bool accumulate, int threads) {
  SgemmOptions o;
  o.accumulate = accumulate;
  o.threads = threads;
  return o;
}

}  // namespace

void sgemm_nt(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  sgemm_nt_strided(c, n, a, k, b, k, m, k, n, accumulate, threads);
}

void sgemm_nn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  sgemm_nn_strided(c, n, a, k, b, n, m, k, n, accumulate, threads);
}

void sgemm_tn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  sgemm_tn_strided(c, n, a, m, b, n, m, k, n, accumulate, threads);
}

void sgemm_nt_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads) {
  mx::cpu::sgemm(c, ldc, StridedMatrix{a, lda, 1}, StridedMatrix{b, 1, ldb}, m, k, n,
                 options(accumulate, threads));
}

void sgemm_nn_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads) {
  mx::cpu::sgemm(c, ldc, StridedMatrix{a, lda, 1}, StridedMatrix{b, ldb, 1}, m, k, n,
                 options(accumulate, threads));
}

void sgemm_tn_strided(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n, bool accumulate, int threads) {
  mx::cpu::sgemm(c, ldc, StridedMatrix{a, 1, lda}, StridedMatrix{b, ldb, 1}, m, k, n,
                 options(accumulate, threads));
}

}  // namespace mx::nn::cpu
