// The FP64 product of the factorizations (mx/kernels/cpu/dgemm.h): every element continues one
// chain of fused multiply-adds in k order, on every instruction set, for any split along K.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "mx/kernels/cpu/dgemm.h"

namespace mx::cpu {
namespace {

std::vector<double> random_values(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> v(static_cast<size_t>(count));
  for (double& x : v) x = d(rng);
  return v;
}

// Past every tile and depth edge: 8-row and 16-column tiles, 256 deep; row strides wider than
// the rows.
constexpr int64_t kM = 37, kK = 531, kN = 83, kLda = kK + 3, kLdb = kN + 5, kLdc = kN + 1;

TEST(CpuDgemm, EveryElementContinuesOneChainOfFusedMultiplyAddsOnEveryTarget) {
  const auto a = random_values(kM * kLda, 1), b = random_values(kK * kLdb, 2);
  const auto start = random_values(kM * kLdc, 3);
  for (const SimdTarget target : supported_targets()) {
    std::vector<double> c = start;
    dgemm_accumulate(c.data(), kLdc, a.data(), kLda, b.data(), kLdb, kM, kK, kN, target);
    for (int64_t i = 0; i < kM; ++i) {
      for (int64_t j = 0; j < kLdc; ++j) {
        double want = start[size_t(i * kLdc + j)];
        if (j < kN) {
          for (int64_t p = 0; p < kK; ++p) {
            want = std::fma(a[size_t(i * kLda + p)], b[size_t(p * kLdb + j)], want);
          }
        }
        ASSERT_EQ(c[size_t(i * kLdc + j)], want) << target_name(target) << " " << i << ", " << j;
      }
    }
  }
}

TEST(CpuDgemm, ConsecutiveSplitsAlongKGiveTheBitsOfTheWhole) {
  const auto a = random_values(kM * kLda, 4), b = random_values(kK * kLdb, 5);
  std::vector<double> whole = random_values(kM * kLdc, 6), split = whole;
  dgemm_accumulate(whole.data(), kLdc, a.data(), kLda, b.data(), kLdb, kM, kK, kN);
  const int64_t bounds[] = {0, 100, 101, 400, kK};
  for (int s = 0; s + 1 < 5; ++s) {
    const int64_t p0 = bounds[s], p1 = bounds[s + 1];
    dgemm_accumulate(split.data(), kLdc, a.data() + p0, kLda, b.data() + p0 * kLdb, kLdb, kM,
                     p1 - p0, kN);
  }
  EXPECT_EQ(split, whole);
}

}  // namespace
}  // namespace mx::cpu
