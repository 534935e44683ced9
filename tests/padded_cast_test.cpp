// Zero padding does not change an MX cast: rows padded with zero columns, cast along the rows
// or down the columns, give the unpadded rows' casts in their first columns and zeros in the
// padding, under every rounding whose result does not depend on a value's index (all but
// stochastic). The GPU training backend casts an odd-width gradient in its padded rows on this
// ground (mx/nn/cuda/cuda_backend_linear.cpp, casts_padded_rows).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mx/core/half.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/test_data.h"

namespace mx {
namespace {

std::vector<uint16_t> bf16_of(const std::vector<float>& values) {
  std::vector<uint16_t> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = float_to_bf16(values[i]);
  return out;
}

TEST(PaddedCast, ZeroColumnsLeaveEveryCastButStochasticAsItWas) {
  for (const int64_t width : {int64_t{261}, int64_t{1001}, int64_t{50257}}) {
    const int64_t rows = width > 2000 ? 3 : 67, padded = (width + 7) / 8 * 8;
    const std::vector<float> values = testing::stress_values(size_t(rows * width), 61);
    std::vector<float> padded_values(size_t(rows * padded), 0.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < width; ++c) {
        padded_values[size_t(r * padded + c)] = values[size_t(r * width + c)];
      }
    }
    const std::vector<uint16_t> dense_in = bf16_of(values), padded_in = bf16_of(padded_values);
    const std::vector<int64_t> dense_shape{rows, width}, padded_shape{rows, padded};
    for (ElementFormat format :
         {ElementFormat::kE4M3, ElementFormat::kE5M2, ElementFormat::kE3M2, ElementFormat::kE2M3,
          ElementFormat::kE2M1, ElementFormat::kInt8}) {
      for (Rounding rounding :
           {Rounding::kNearestEven, Rounding::kNearestAway, Rounding::kTowardZero}) {
        for (const int axis : {0, 1}) {
          QuantSpec spec;
          spec.format = format;
          spec.rounding = rounding;
          spec.axis = axis;
          SCOPED_TRACE(std::string(traits(format).name) + " rounding " +
                       std::to_string(int(rounding)) + " axis " + std::to_string(axis) + " width " +
                       std::to_string(width));
          std::vector<uint16_t> dense(dense_in.size()), padded_out(padded_in.size());
          ASSERT_EQ("", cpu::fake_quantize(dense_in.data(), DType::kBF16, dense_shape, spec,
                                           DType::kBF16, dense.data()));
          ASSERT_EQ("", cpu::fake_quantize(padded_in.data(), DType::kBF16, padded_shape, spec,
                                           DType::kBF16, padded_out.data()));
          int64_t differ = 0, nonzero_padding = 0;
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < padded; ++c) {
              const uint16_t got = padded_out[size_t(r * padded + c)];
              if (c >= width) {
                nonzero_padding += got != 0;
              } else {
                differ += got != dense[size_t(r * width + c)];
              }
            }
          }
          EXPECT_EQ(differ, 0);
          EXPECT_EQ(nonzero_padding, 0);
        }
      }
    }
  }
}

}  // namespace
}  // namespace mx
