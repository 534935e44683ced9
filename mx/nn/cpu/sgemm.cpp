#include "mx/nn/cpu/sgemm.h"

#include <vector>

#include "mx/kernels/cpu/parallel.h"

namespace mx::nn::cpu {
namespace {

constexpr int kLanes = 8;

// sum_k a[k] * b[k] in a fixed order: lane l sums k = l, l+8, ...; then a fixed tree.
inline float dot(const float* __restrict a, const float* __restrict b, int64_t k) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i + l < k; ++l) acc[l] += a[i + l] * b[i + l];
  const float s0 = (acc[0] + acc[4]) + (acc[1] + acc[5]);
  const float s1 = (acc[2] + acc[6]) + (acc[3] + acc[7]);
  return s0 + s1;
}

// Row tiles big enough to amortise a thread start, small enough to balance.
int64_t row_grain(int64_t work_per_row) {
  return work_per_row >= (1 << 16) ? 1 : 16;
}

}  // namespace

void sgemm_nt(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  mx::cpu::parallel_for(m, row_grain(k * n), threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* ci = c + i * n;
      const float* ai = a + i * k;
      for (int64_t j = 0; j < n; ++j) {
        const float d = dot(ai, b + j * k, k);
        ci[j] = accumulate ? ci[j] + d : d;
      }
    }
  });
}

void sgemm_nn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  // Row i of C is sum_p a[i,p] * B[p,:], accumulated over p in order: vectorises over N.
  mx::cpu::parallel_for(m, row_grain(k * n), threads, [&](int64_t begin, int64_t end) {
    std::vector<float> row(n);
    for (int64_t i = begin; i < end; ++i) {
      float* __restrict acc = row.data();
      for (int64_t j = 0; j < n; ++j) acc[j] = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        const float s = a[i * k + p];
        const float* __restrict bp = b + p * n;
        for (int64_t j = 0; j < n; ++j) acc[j] += s * bp[j];
      }
      float* ci = c + i * n;
      for (int64_t j = 0; j < n; ++j) ci[j] = accumulate ? ci[j] + acc[j] : acc[j];
    }
  });
}

void sgemm_tn(float* c, const float* a, const float* b, int64_t m, int64_t k, int64_t n,
              bool accumulate, int threads) {
  // Row i of C is sum_p A[p,i] * B[p,:]: the same order as sgemm_nn with A read down a column.
  mx::cpu::parallel_for(m, row_grain(k * n), threads, [&](int64_t begin, int64_t end) {
    std::vector<float> row(n);
    for (int64_t i = begin; i < end; ++i) {
      float* __restrict acc = row.data();
      for (int64_t j = 0; j < n; ++j) acc[j] = 0.0f;
      for (int64_t p = 0; p < k; ++p) {
        const float s = a[p * m + i];
        const float* __restrict bp = b + p * n;
        for (int64_t j = 0; j < n; ++j) acc[j] += s * bp[j];
      }
      float* ci = c + i * n;
      for (int64_t j = 0; j < n; ++j) ci[j] = accumulate ? ci[j] + acc[j] : acc[j];
    }
  });
}

}  // namespace mx::nn::cpu
