// The cache-blocked FP32 product (mx/kernels/cpu/sgemm.h): its fixed order of sums makes the bits
// independent of the instruction set, the thread count, the blocking and the rows computed
// together; its symmetric mode equals the full product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "mx/kernels/cpu/sgemm.h"

namespace mx::cpu {
namespace {

std::vector<float> random_values(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = d(rng);
  return v;
}

SgemmOptions with(bool accumulate, bool symmetric, int threads, std::optional<SimdTarget> target) {
  SgemmOptions o;
  o.accumulate = accumulate;
  o.symmetric = symmetric;
  o.threads = threads;
  o.target = target;
  return o;
}

// A product of m rows computed twice: accumulated onto the first m rows of `start`, and fresh
// into NaNs, both with C's rows ldc apart.
struct AccumulatedAndFresh {
  std::vector<float> accumulated, fresh;
};
AccumulatedAndFresh both_products(const std::vector<float>& start, int64_t m, int64_t ldc,
                                  StridedMatrix a, StridedMatrix b, int64_t k, int64_t n,
                                  int threads, SimdTarget target) {
  AccumulatedAndFresh r{std::vector<float>(start.begin(), start.begin() + m * ldc),
                        std::vector<float>(size_t(m * ldc), NAN)};
  sgemm(r.accumulated.data(), ldc, a, b, m, k, n, with(true, false, threads, target));
  sgemm(r.fresh.data(), ldc, a, b, m, k, n, with(false, false, threads, target));
  return r;
}

// Sizes that cross every block edge (96 rows, 256 columns, 256 deep) and leave partial tiles.
constexpr int64_t kM = 197, kK = 601, kN = 283;

// The chain the header promises, one element at a time: fused multiply-adds in k order, over
// the first `depth` of A's columns and B's rows.
float chained_dot(const std::vector<float>& a, const std::vector<float>& b, int64_t i, int64_t j,
                  float start, int64_t depth = kK) {
  float s = start;
  for (int64_t p = 0; p < depth; ++p) s = std::fma(a[size_t(i * kK + p)], b[size_t(p * kN + j)], s);
  return s;
}

TEST(CpuSgemm, EveryElementIsOneChainOfFusedMultiplyAddsOnEveryTarget) {
  const auto a = random_values(kM * kK, 1), b = random_values(kK * kN, 2);
  const auto start = random_values(kM * kN, 3);
  for (const SimdTarget target : supported_targets()) {
    std::vector<float> c = start, fresh(size_t(kM * kN), NAN);
    sgemm(c.data(), kN, {a.data(), kK, 1}, {b.data(), kN, 1}, kM, kK, kN,
          with(true, false, 0, target));
    sgemm(fresh.data(), kN, {a.data(), kK, 1}, {b.data(), kN, 1}, kM, kK, kN,
          with(false, false, 0, target));
    for (int64_t i = 0; i < kM; ++i) {
      for (int64_t j = 0; j < kN; ++j) {
        const size_t x = size_t(i * kN + j);
        ASSERT_EQ(c[x], chained_dot(a, b, i, j, start[x])) << target_name(target) << " " << i;
        ASSERT_EQ(fresh[x], chained_dot(a, b, i, j, 0.0f)) << target_name(target) << " " << i;
      }
    }
  }
}

TEST(CpuSgemm, TransposedOperandsAndThreadCountsGiveTheSameBits) {
  const auto a = random_values(kM * kK, 4), b = random_values(kK * kN, 5);
  std::vector<float> at(a.size()), bt(b.size());
  for (int64_t i = 0; i < kM; ++i) {
    for (int64_t p = 0; p < kK; ++p) at[size_t(p * kM + i)] = a[size_t(i * kK + p)];
  }
  for (int64_t p = 0; p < kK; ++p) {
    for (int64_t j = 0; j < kN; ++j) bt[size_t(j * kK + p)] = b[size_t(p * kN + j)];
  }
  std::vector<float> want(size_t(kM * kN)), got(want.size());
  sgemm(want.data(), kN, {a.data(), kK, 1}, {b.data(), kN, 1}, kM, kK, kN,
        with(false, false, 1, {}));
  sgemm(got.data(), kN, {at.data(), 1, kM}, {bt.data(), 1, kK}, kM, kK, kN,
        with(false, false, 5, {}));
  EXPECT_EQ(got, want);
}

// Up to eight rows against W's rows (x W^T, as a decoding step computes) take an unpacked path;
// it must keep the same chains, on every target, for every row count around its limit and for
// depths that end inside a step of sixteen (all of it inside one at depth 8, a head's Q K^T).
TEST(CpuSgemm, FewRowsTimesTransposedWeightsKeepTheChains) {
  const auto a = random_values(kM * kK, 7), b = random_values(kK * kN, 8);
  std::vector<float> w(size_t(kN * kK));  // W[j][p] = B(p, j)
  for (int64_t p = 0; p < kK; ++p) {
    for (int64_t j = 0; j < kN; ++j) w[size_t(j * kK + p)] = b[size_t(p * kN + j)];
  }
  const auto start = random_values(kM * kN, 9);
  for (const int64_t depth : {int64_t{8}, int64_t{16}, int64_t{37}, kK}) {
    for (const SimdTarget target : supported_targets()) {
      for (const int64_t m : {1, 2, 7, 8, 9}) {
        for (const int threads : {1, 2}) {
          const auto [c, fresh] = both_products(start, m, kN, {a.data(), kK, 1}, {w.data(), 1, kK},
                                                depth, kN, threads, target);
          const auto where = [&] {
            return ::testing::Message() << target_name(target) << " depth=" << depth << " m=" << m;
          };
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < kN; ++j) {
              const size_t x = size_t(i * kN + j);
              ASSERT_EQ(c[x], chained_dot(a, b, i, j, start[x], depth)) << where();
              ASSERT_EQ(fresh[x], chained_dot(a, b, i, j, 0.0f, depth)) << where();
            }
          }
        }
      }
    }
  }
}

// Up to eight rows against a B stored by its rows (P V, as a decoding step's attention reads the
// value cache) take another unpacked path, here with B's rows and C's rows spaced wider than
// their width, as one head's rows are inside [T, heads, hs]. Widths under 64 (heads of 5 to 48)
// run fewer vectors, the last one in part.
TEST(CpuSgemm, FewRowsTimesARowMajorOperandKeepTheChains) {
  const auto a = random_values(kM * kK, 10), b = random_values(kK * kN, 11);
  for (const int64_t n : {int64_t{5}, int64_t{16}, int64_t{27}, int64_t{48}, kN}) {
    const int64_t ldb = n + 21, ldc = n + 5;
    std::vector<float> spaced_b(size_t(kK * ldb), NAN);
    for (int64_t p = 0; p < kK; ++p) std::copy_n(&b[size_t(p * kN)], n, &spaced_b[size_t(p * ldb)]);
    const auto start = random_values(kM * ldc, 12);
    for (const SimdTarget target : supported_targets()) {
      for (const int64_t m : {1, 2, 7, 8, 9}) {
        for (const int threads : {1, 2}) {
          const auto [c, fresh] = both_products(start, m, ldc, {a.data(), kK, 1},
                                                {spaced_b.data(), ldb, 1}, kK, n, threads, target);
          const auto where = [&] {
            return ::testing::Message() << target_name(target) << " n=" << n << " m=" << m;
          };
          for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < ldc; ++j) {
              const size_t x = size_t(i * ldc + j);
              if (j >= n) {  // past C's width: untouched
                ASSERT_EQ(c[x], start[x]) << where();
                ASSERT_TRUE(std::isnan(fresh[x])) << where();
                continue;
              }
              ASSERT_EQ(c[x], chained_dot(a, b, i, j, start[x])) << where();
              ASSERT_EQ(fresh[x], chained_dot(a, b, i, j, 0.0f)) << where();
            }
          }
        }
      }
    }
  }
}

TEST(CpuSgemm, ARowDoesNotDependOnTheRowsComputedWithIt) {
  const auto a = random_values(kM * kK, 6), b = random_values(kK * kN, 7);
  std::vector<float> all(static_cast<size_t>(kM * kN)), one(static_cast<size_t>(kN));
  sgemm(all.data(), kN, {a.data(), kK, 1}, {b.data(), kN, 1}, kM, kK, kN);
  for (const int64_t row : {0, 13, 100, 196}) {
    sgemm(one.data(), kN, {a.data() + row * kK, kK, 1}, {b.data(), kN, 1}, 1, kK, kN);
    EXPECT_EQ(one, std::vector<float>(all.begin() + row * kN, all.begin() + (row + 1) * kN));
  }
}

TEST(CpuSgemm, SymmetricModeEqualsTheFullProductOfXTransposeX) {
  const int64_t rows = 300, k = 400;
  const auto x = random_values(rows * k, 8);
  std::vector<float> full(size_t(k * k)), half(size_t(k * k), NAN);
  const StridedMatrix xt{x.data(), 1, k}, xx{x.data(), k, 1};
  sgemm(full.data(), k, xt, xx, k, rows, k);
  sgemm(half.data(), k, xt, xx, k, rows, k, with(false, true, 0, {}));
  EXPECT_EQ(half, full);
}

TEST(CpuSgemm, AnEmptyDepthGivesZerosOrLeavesTheSum) {
  std::vector<float> c = {1, 2, 3, 4};
  const float none = 0.0f;
  sgemm(c.data(), 2, {&none, 0, 1}, {&none, 2, 1}, 2, 0, 2, with(true, false, 0, {}));
  EXPECT_EQ(c, (std::vector<float>{1, 2, 3, 4}));
  sgemm(c.data(), 2, {&none, 0, 1}, {&none, 2, 1}, 2, 0, 2);
  EXPECT_EQ(c, (std::vector<float>(4, 0.0f)));
}

}  // namespace
}  // namespace mx::cpu
