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
  mx::cpu::sgemm(c, n, StridedMatrix{a, k, 1}, StridedMatrix{b, 1, k}, m, k, n,
                 options(accumulate, threads));
}

void sgemm_nn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  mx::cpu::sgemm(c, n, StridedMatrix{a, k, 1}, StridedMatrix{b, n, 1}, m, k, n,
                 options(accumulate, threads));
}

void sgemm_tn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  mx::cpu::sgemm(c, n, StridedMatrix{a, 1, m}, StridedMatrix{b, n, 1}, m, k, n,
                 options(accumulate, threads));
}

}  // namespace mx::nn::cpu
