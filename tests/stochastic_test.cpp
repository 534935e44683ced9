// Stochastic rounding: reproducible bits for a seed on every thread split and instruction set,
// and unbiased on average.
#include <gtest/gtest.h>

#include <cmath>

#include "mx/core/quantize_ref.h"
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
