// The CPU fast path, on every instruction set this machine supports, produces the reference's
// bytes for every format, scale rule, rounding mode and block organisation.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/test_data.h"

namespace mx {
namespace {

struct Case {
  std::vector<int64_t> shape;
  QuantSpec spec;
};

void expect_fast_equals_reference(const std::vector<float>& values, const Case& c) {
  std::string error;
  const MxTensor want = quantize_ref(values, c.shape, c.spec, &error);
  ASSERT_EQ(error, "");
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    SCOPED_TRACE(std::string(cpu::target_name(target)) + " " + describe(c.spec));
    cpu::Options options;
    options.target = target;
    options.threads = 2;
    MxTensor got;
    ASSERT_EQ(cpu::quantize(values.data(), DType::kF32, c.shape, c.spec, &got, options), "");
    ASSERT_EQ(got.scales, want.scales);
    ASSERT_EQ(got.elements, want.elements);
    ASSERT_EQ(got.offsets, want.offsets);

    const std::vector<float> want_values = dequantize_ref(want);
    std::vector<float> got_values(values.size());
    ASSERT_EQ(cpu::dequantize(got, DType::kF32, got_values.data(), options), "");
    ASSERT_EQ(0, std::memcmp(got_values.data(), want_values.data(), values.size() * 4));
    std::vector<uint16_t> want_bf16(values.size()), got_bf16(values.size());
    for (size_t i = 0; i < values.size(); ++i) want_bf16[i] = float_to_bf16(want_values[i]);
    ASSERT_EQ(cpu::dequantize(got, DType::kBF16, got_bf16.data(), options), "");
    ASSERT_EQ(got_bf16, want_bf16);

    std::vector<float> fake(values.size());
    ASSERT_EQ(cpu::fake_quantize(values.data(), DType::kF32, c.shape, c.spec, DType::kF32,
                                 fake.data(), options),
              "");
    ASSERT_EQ(0, std::memcmp(fake.data(), want_values.data(), values.size() * 4));
    std::vector<uint16_t> fake_bf16(values.size());
    ASSERT_EQ(cpu::fake_quantize(values.data(), DType::kF32, c.shape, c.spec, DType::kBF16,
                                 fake_bf16.data(), options),
              "");
    ASSERT_EQ(fake_bf16, want_bf16);
  }
}

TEST(CpuFastPath, EqualsReferenceForEveryFormatRuleAndRounding) {
  const std::vector<int64_t> shape = {37, 100};
  const std::vector<float> values = testing::stress_values(37 * 100, 1, true);
  for (const FormatTraits& f : all_formats()) {
    for (ScaleRule rule :
         {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil}) {
      for (Rounding mode : {Rounding::kNearestEven, Rounding::kNearestAway, Rounding::kTowardZero,
                            Rounding::kStochastic}) {
        Case c{shape, {}};
        c.spec.format = f.format;
        c.spec.scale_rule = rule;
        c.spec.rounding = mode;
        c.spec.seed = 42;
        expect_fast_equals_reference(values, c);
      }
    }
  }
}

TEST(CpuFastPath, EqualsReferenceForEveryBlockOrganisation) {
  const std::vector<int64_t> shape = {3, 45, 70};
  const std::vector<float> values = testing::stress_values(3 * 45 * 70, 2);
  std::vector<QuantSpec> specs;
  for (int axis : {0, 1, 2, -1, -2}) {
    for (int block : {1, 5, 8, 16, 32, 64}) {
      QuantSpec s;
      s.axis = axis;
      s.block_size = block;
      specs.push_back(s);
    }
  }
  for (auto [r, c] : {std::pair{4, 4}, {16, 16}, {32, 32}, {1, 32}, {3, 7}}) {
    QuantSpec s;
    s.tile_rows = r;
    s.tile_cols = c;
    specs.push_back(s);
  }
  for (const FormatTraits& f : all_formats()) {
    for (QuantSpec s : specs) {
      s.format = f.format;
      s.rounding = Rounding::kStochastic;
      expect_fast_equals_reference(values, {shape, s});
    }
  }
}

TEST(CpuFastPath, EqualsReferenceWithAsymmetricFlushAndPresets) {
  const std::vector<int64_t> shape = {17, 99};
  const std::vector<float> values = testing::stress_values(17 * 99, 3, true);
  for (const FormatTraits& f : all_formats()) {
    QuantSpec asym;
    asym.format = f.format;
    asym.asymmetric = true;
    expect_fast_equals_reference(values, {shape, asym});
    QuantSpec flush;
    flush.format = f.format;
    flush.flush_subnormals = true;
    expect_fast_equals_reference(values, {shape, flush});
    expect_fast_equals_reference(values, {shape, microxcaling_preset(f.format)});
    expect_fast_equals_reference(values, {shape, rceil_preset(f.format)});
  }
}

// Blocks down columns are read a strip of rows at a time: chunks that start and end inside a
// strip (two threads over an odd count of blocks), strips cut short by the last row, and the
// options that change a block's values before its scale.
TEST(CpuFastPath, ColumnBlocksEqualReferenceWithAsymmetricFlushAndThreadSplits) {
  const std::vector<int64_t> shape = {2, 77, 37};
  const std::vector<float> values = testing::stress_values(2 * 77 * 37, 4, true);
  for (const FormatTraits& f : all_formats()) {
    for (int axis : {0, 1}) {
      for (int block : {32, 7}) {
        QuantSpec s;
        s.format = f.format;
        s.axis = axis;
        s.block_size = block;
        s.rounding = Rounding::kStochastic;
        s.seed = 9;
        expect_fast_equals_reference(values, {shape, s});
        s.rounding = Rounding::kNearestEven;
        s.asymmetric = true;
        expect_fast_equals_reference(values, {shape, s});
        s.asymmetric = false;
        s.flush_subnormals = true;
        expect_fast_equals_reference(values, {shape, s});
      }
    }
  }
}

TEST(CpuFastPath, SixteenBitInputsQuantizeAsTheirFloat32Values) {
  const std::vector<int64_t> shape = {8, 96};
  std::vector<uint16_t> bf16(8 * 96), f16(8 * 96);
  std::vector<float> bf16_values(bf16.size()), f16_values(f16.size());
  std::mt19937 rng(5);
  for (size_t i = 0; i < bf16.size(); ++i) {
    bf16[i] = uint16_t(rng());
    f16[i] = uint16_t(rng());
    bf16_values[i] = bf16_to_float(bf16[i]);
    f16_values[i] = fp16_to_float(f16[i]);
  }
  for (const FormatTraits& f : all_formats()) {
    for (int axis : {-1, 0}) {
      QuantSpec spec;
      spec.format = f.format;
      spec.axis = axis;
      std::string error;
      MxTensor got;
      ASSERT_EQ(cpu::quantize(bf16.data(), DType::kBF16, shape, spec, &got), "");
      MxTensor want = quantize_ref(bf16_values, shape, spec, &error);
      EXPECT_EQ(got.elements, want.elements);
      EXPECT_EQ(got.scales, want.scales);
      ASSERT_EQ(cpu::quantize(f16.data(), DType::kF16, shape, spec, &got), "");
      want = quantize_ref(f16_values, shape, spec, &error);
      EXPECT_EQ(got.elements, want.elements);
      EXPECT_EQ(got.scales, want.scales);
    }
  }
}

// Values read from a file lie wherever its header leaves them: float32 and bfloat16 inputs one
// byte off their alignment quantize, and fake-quantize, to the reference's bits.
TEST(CpuFastPath, InputsOffTheirAlignmentQuantizeAsAlignedOnes) {
  const std::vector<int64_t> shape = {4, 64};
  std::vector<float> values(4 * 64);
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (float& v : values) v = normal(rng);
  QuantSpec spec;
  spec.format = ElementFormat::kE2M1;
  std::string error;
  const MxTensor want = quantize_ref(values, shape, spec, &error);
  ASSERT_EQ(error, "");
  const std::vector<float> want_values = dequantize_ref(want);
  for (cpu::SimdTarget target : cpu::supported_targets()) {
    SCOPED_TRACE(cpu::target_name(target));
    cpu::Options options;
    options.target = target;
    std::vector<uint8_t> shifted(values.size() * sizeof(float) + 1);
    std::memcpy(shifted.data() + 1, values.data(), values.size() * sizeof(float));
    MxTensor got;
    ASSERT_EQ(cpu::quantize(shifted.data() + 1, DType::kF32, shape, spec, &got, options), "");
    EXPECT_EQ(got.scales, want.scales);
    EXPECT_EQ(got.elements, want.elements);
    std::vector<float> fake(values.size());
    ASSERT_EQ(cpu::fake_quantize(shifted.data() + 1, DType::kF32, shape, spec, DType::kF32,
                                 fake.data(), options),
              "");
    EXPECT_EQ(0, std::memcmp(fake.data(), want_values.data(), values.size() * sizeof(float)));

    std::vector<uint16_t> bf16(values.size());
    std::vector<float> bf16_values(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      bf16[i] = float_to_bf16(values[i]);
      bf16_values[i] = bf16_to_float(bf16[i]);
    }
    std::memcpy(shifted.data() + 1, bf16.data(), bf16.size() * sizeof(uint16_t));
    const MxTensor want_bf16 = quantize_ref(bf16_values, shape, spec, &error);
    ASSERT_EQ(cpu::quantize(shifted.data() + 1, DType::kBF16, shape, spec, &got, options), "");
    EXPECT_EQ(got.scales, want_bf16.scales);
    EXPECT_EQ(got.elements, want_bf16.elements);
  }
}

}  // namespace
}  // namespace mx
