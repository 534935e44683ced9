// Stochastic rounding: reproducible bits for a seed on every thread split and instruction set,
// and unbiased on average.
#include <gtest/gtest.h>

#include <cmath>

#include "mx/core/element_ref.h"
#include "mx/core/quantize_ref.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/test_data.h"

namespace mx {
namespace {

QuantSpec sr_spec(ElementFormat f, uint64_t seed) {
  QuantSpec s;
  s.format = f;
  s.rounding = Rounding::kStochastic;
  s.seed = seed;
  return s;
}

TEST(StochasticDither, TwoNeighboursShareOneHashAsItsLowAndHighHalves) {
  const uint64_t key = stochastic_stream_key(3);
  for (uint64_t pair : {uint64_t{0}, uint64_t{1}, uint64_t{12345}, (uint64_t{5} << 32) + 77}) {
    const uint32_t bits =
        stochastic_pair_bits(stochastic_window_key(key, pair >> 32), uint32_t(pair));
    EXPECT_EQ(stochastic_dither(key, 2 * pair), bits & 0xFFFFu);
    EXPECT_EQ(stochastic_dither(key, 2 * pair + 1), bits >> 16);
  }
}

TEST(StochasticDither, SequentialDrawsMatchSingleDrawsAcrossA2To32PairWindow) {
  const uint64_t key = stochastic_stream_key(11);
  const uint64_t boundary = uint64_t{1} << 33;  // first element of window 1
  StochasticDithers draw(key);
  for (uint64_t i = boundary - 40; i < boundary + 40; ++i) {
    EXPECT_EQ(draw(i), stochastic_dither(key, i)) << i;
  }
  // Windows have their own keys: the same low pair bits draw differently.
  EXPECT_NE(stochastic_dither(key, 6), stochastic_dither(key, boundary + 6));
}

TEST(StochasticDither, IsUniformOverSixteenBucketsAndUncorrelatedWithItsNeighbour) {
  // 2^20 draws in 16 buckets: chi-square with 15 degrees of freedom stays under 50 with
  // probability 1 - 1e-5. The joint buckets of (draw i, draw i+1), 256 cells: under 400.
  const uint64_t key = stochastic_stream_key(42);
  const int n = 1 << 20;
  std::vector<double> single(16, 0), joint(256, 0);
  uint32_t previous = 0;
  for (int i = 0; i < n; ++i) {
    const uint32_t d = stochastic_dither(key, uint64_t(i));
    ASSERT_LT(d, 0x10000u);
    single[d >> 12] += 1;
    if (i > 0) joint[(previous >> 12) * 16 + (d >> 12)] += 1;
    previous = d;
  }
  auto chi_square = [](const std::vector<double>& counts, double total) {
    const double expected = total / double(counts.size());
    double x = 0;
    for (double c : counts) x += (c - expected) * (c - expected) / expected;
    return x;
  };
  EXPECT_LT(chi_square(single, n), 50.0);
  EXPECT_LT(chi_square(joint, n - 1), 400.0);
}

TEST(StochasticDither, RoundsUpExactlyWhenTheTruncatedFractionPlusTheDitherReaches2To16) {
  // E2M1 at scale 1: 2 + f lies between codes 4 (2.0) and 5 (3.0).
  const FormatTraits& f = traits(ElementFormat::kE2M1);
  const float x = 2.0f + 0.25f + 0x1.0p-20f;  // fraction 0.25 + 2^-20: 16-bit fraction 0x4000
  EXPECT_EQ(encode_element_ref(f, x, 0, Rounding::kStochastic, 0xBFFFu), 4);
  EXPECT_EQ(encode_element_ref(f, x, 0, Rounding::kStochastic, 0xC000u), 5);
  EXPECT_EQ(encode_element_ref(f, 2.0f, 0, Rounding::kStochastic, 0xFFFFu), 4);
}

TEST(Stochastic, SameSeedSameBitsOnEveryThreadCountAndTarget) {
  const std::vector<float> v = testing::stress_values(64 * 100, 4);
  const std::vector<int64_t> shape = {64, 100};
  std::string error;
  const MxTensor want = quantize_ref(v, shape, sr_spec(ElementFormat::kE2M1, 7), &error);
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    for (int threads : {1, 2, 3}) {
      cpu::Options o;
      o.target = target;
      o.threads = threads;
      MxTensor got;
      ASSERT_EQ(
          cpu::quantize(v.data(), DType::kF32, shape, sr_spec(ElementFormat::kE2M1, 7), &got, o),
          "");
      EXPECT_EQ(got.elements, want.elements);
    }
  }
  const MxTensor other = quantize_ref(v, shape, sr_spec(ElementFormat::kE2M1, 8), &error);
  EXPECT_NE(other.elements, want.elements);
}

TEST(Stochastic, IsUnbiasedOverSeeds) {
  // Block [6, x]: scale 1 for E2M1, so x = 2.3 lies between codes 2 and 3 and rounds up with
  // probability p = 0.3. Over N = 4096 seeds the mean of the decoded x has standard deviation
  // sqrt(p (1 - p) / N) * 1 = 0.0072; 5 sigma is 0.036.
  const int n = 4096;
  const float x = 2.3f;
  double sum = 0;
  int ups = 0;
  for (int seed = 0; seed < n; ++seed) {
    std::string error;
    const MxTensor t = quantize_ref(std::vector<float>{6.0f, x}, std::vector<int64_t>{2},
                                    sr_spec(ElementFormat::kE2M1, uint64_t(seed)), &error);
    const float d = dequantize_ref(t)[1];
    ASSERT_TRUE(d == 2.0f || d == 3.0f) << d;
    sum += d;
    ups += d == 3.0f;
  }
  EXPECT_NEAR(sum / n, double(x), 0.036);
  // The same bound on the rounding-up frequency: p = (2.3 - 2) / (3 - 2) = 0.3.
  EXPECT_NEAR(double(ups) / n, 0.3, 0.036);
}

TEST(Stochastic, MeanErrorShrinksLikeOneOverRootN) {
  // Many elements between two codes, one seed: the mean error over 2^16 elements is about
  // gap * sqrt(p (1 - p) / 2^16) < 0.002; nearest-even errs by 0.3 on each of them.
  std::vector<float> v(1 << 16, 2.3f);
  for (size_t i = 0; i < v.size(); i += 32) v[i] = 6.0f;
  std::string error;
  const std::vector<float> d = dequantize_ref(quantize_ref(
      v, std::vector<int64_t>{int64_t(v.size())}, sr_spec(ElementFormat::kE2M1, 1), &error));
  double err = 0;
  int count = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 32 == 0) continue;
    err += double(d[i]) - v[i];
    ++count;
  }
  EXPECT_LT(std::fabs(err / count), 0.01);
}

}  // namespace
}  // namespace mx
