// The spec's Dot/DotGeneral and the reference GEMM: exact block products, FP32 results, and
// the same answer whichever way the second operand is laid out.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "mx/core/dot_ref.h"
#include "mx/core/quantize_ref.h"
#include "tests/test_data.h"

namespace mx {
namespace {

MxTensor quantize(const std::vector<float>& v, std::vector<int64_t> shape, QuantSpec spec) {
  std::string error;
  MxTensor t = quantize_ref(v, shape, spec, &error);
  EXPECT_EQ(error, "");
  return t;
}

QuantSpec spec_of(ElementFormat f, int axis = -1) {
  QuantSpec s;
  s.format = f;
  s.axis = axis;
  return s;
}

std::vector<float> normal_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Sum of products of the decoded values, in long double: exact for these sizes because every
// product of two MX values at moderate scales has few significant bits.
double decoded_dot(const MxTensor& a, const MxTensor& b) {
  const std::vector<float> da = dequantize_ref(a), db = dequantize_ref(b);
  long double sum = 0;
  for (size_t i = 0; i < da.size(); ++i) sum += (long double)da[i] * db[i];
  return double(sum);
}

TEST(DotRef, DotGeneralEqualsTheSumOfDecodedProductsRoundedOnceToFloat32) {
  for (const FormatTraits& fa : all_formats()) {
    for (const FormatTraits& fb : all_formats()) {  // mixed element types are allowed
      const std::vector<float> x = normal_values(100, 1), y = normal_values(100, 2);
      const MxTensor a = quantize(x, {100}, spec_of(fa.format));
      const MxTensor b = quantize(y, {100}, spec_of(fb.format));
      float got = 0;
      ASSERT_EQ(dot_general(a, b, &got), "");
      EXPECT_EQ(got, static_cast<float>(decoded_dot(a, b))) << fa.name << " x " << fb.name;
    }
  }
}

TEST(DotRef, Int8BlockProductsAreExactIntegers) {
  // 32 * 127 * 127 = 516128 < 2^19: the whole block sum is an exact integer times 2^-12.
  std::vector<float> x(32, 1.984375f), y(32, -1.984375f);
  const MxTensor a = quantize(x, {32}, spec_of(ElementFormat::kInt8));
  const MxTensor b = quantize(y, {32}, spec_of(ElementFormat::kInt8));
  float got = 0;
  ASSERT_EQ(dot_general(a, b, &got), "");
  EXPECT_EQ(got, -32.0f * 127 * 127 / 4096);
}

TEST(DotRef, NanBlockMakesTheDotNan) {
  std::vector<float> x = normal_values(64, 3), y = normal_values(64, 4);
  x[40] = NAN;
  float got = 0;
  ASSERT_EQ(dot_general(quantize(x, {64}, {}), quantize(y, {64}, {}), &got), "");
  EXPECT_TRUE(std::isnan(got));
}

TEST(DotRef, GemmMatchesPerRowDotsAndBothLayoutsOfB) {
  const int64_t m = 5, n = 7, k = 70;  // K not a multiple of 32: the tail block is padded
  const std::vector<float> av = normal_values(m * k, 5), bv = normal_values(n * k, 6);
  std::vector<float> bt(k * n);  // B^T laid out [K, N]
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < k; ++j) bt[j * n + i] = bv[i * k + j];
  }
  const MxTensor a = quantize(av, {m, k}, spec_of(ElementFormat::kE4M3));
  const MxTensor b_nk = quantize(bv, {n, k}, spec_of(ElementFormat::kE2M1));
  const MxTensor b_kn = quantize(bt, {k, n}, spec_of(ElementFormat::kE2M1, 0));
  std::vector<float> c1, c2;
  ASSERT_EQ(gemm_ref(a, b_nk, &c1), "");
  ASSERT_EQ(gemm_ref(a, b_kn, &c2), "");
  EXPECT_EQ(c1, c2);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const std::vector<float> row_a(av.begin() + i * k, av.begin() + (i + 1) * k);
      const std::vector<float> row_b(bv.begin() + j * k, bv.begin() + (j + 1) * k);
      float want = 0;
      ASSERT_EQ(dot_general(quantize(row_a, {k}, spec_of(ElementFormat::kE4M3)),
                            quantize(row_b, {k}, spec_of(ElementFormat::kE2M1)), &want),
                "");
      EXPECT_EQ(c1[i * n + j], want);
    }
  }
}

TEST(DotRef, GemmRejectsMismatchedOperands) {
  const MxTensor a = quantize(normal_values(64, 7), {2, 32}, {});
  const MxTensor b = quantize(normal_values(96, 8), {3, 32}, {});
  const MxTensor wrong_k = quantize(normal_values(128, 9), {2, 64}, {});
  std::vector<float> c;
  EXPECT_EQ(gemm_ref(a, b, &c), "");
  EXPECT_EQ(c.size(), 6u);
  EXPECT_NE(gemm_ref(a, wrong_k, &c).find("inner dimensions differ"), std::string::npos);
  QuantSpec tiled;
  tiled.tile_rows = tiled.tile_cols = 2;
  EXPECT_NE(gemm_ref(quantize(normal_values(64, 1), {2, 32}, tiled), b, &c).find("tiles"),
            std::string::npos);
}

}  // namespace
}  // namespace mx
