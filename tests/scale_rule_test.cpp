// Scale rules against their mathematical definitions, and the E8M0 byte at its edges.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>

#include "mx/core/e8m0.h"
#include "mx/core/element_ref.h"
#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "tests/oracle.h"

namespace mx {
namespace {

constexpr ScaleRule kRules[] = {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven,
                                ScaleRule::kRceil};

TEST(ScaleRule, MatchesTheDefinitionForEveryPositiveBfloat16AndRandomFloat32) {
  std::vector<float> amaxes;
  for (uint32_t b = 1; b < 0x7F80; ++b) amaxes.push_back(bf16_to_float(uint16_t(b)));
  std::mt19937 rng(9);
  for (int i = 0; i < 200000; ++i) {
    const uint32_t bits = rng() & 0x7FFFFFFFu;
    if (bits != 0 && bits < 0x7F800000u) amaxes.push_back(std::bit_cast<float>(bits));
  }
  for (uint32_t sub = 1; sub < 0x800000u; sub = sub * 3 + 1) {  // float32 subnormals
    amaxes.push_back(std::bit_cast<float>(sub));
  }
  for (const FormatTraits& f : all_formats()) {
    for (ScaleRule rule : kRules) {
      int failures = 0;
      for (float a : amaxes) {
        const int got = shared_exponent_ref(f, a, rule);
        const int want = testing::oracle_shared_exponent(f, a, rule);
        if (got != want && ++failures < 4) {
          ADD_FAILURE() << f.name << " " << scale_rule_name(rule) << " amax=" << a << " got " << got
                        << " want " << want;
        }
      }
    }
  }
}

// Quantizes one block and returns the decoded value of element 0.
float first_value_after(ElementFormat format, ScaleRule rule, std::vector<float> block) {
  QuantSpec spec;
  spec.format = format;
  spec.scale_rule = rule;
  std::string error;
  return dequantize_ref(
      quantize_ref(block, std::vector<int64_t>{int64_t(block.size())}, spec, &error))[0];
}

TEST(ScaleRule, FloorClipsTheTopOfTheBlock) {
  EXPECT_EQ(first_value_after(ElementFormat::kE2M1, ScaleRule::kFloor, {7.0f, 1.0f}), 6.0f);
  EXPECT_EQ(first_value_after(ElementFormat::kE4M3, ScaleRule::kFloor, {500.0f, 1.0f}), 448.0f);
  EXPECT_EQ(first_value_after(ElementFormat::kE2M1, ScaleRule::kRceil, {7.0f, 1.0f}), 8.0f);
  // The clipping band starts just above m = 1.5 (E2M1), 1.875 (E2M3), 1.75 (E3M2/E4M3/E5M2):
  // at the band edge the value survives, one float32 ulp above it saturates to max normal.
  const struct {
    ElementFormat f;
    float edge;
  } bands[] = {{ElementFormat::kE2M1, 1.5f},
               {ElementFormat::kE2M3, 1.875f},
               {ElementFormat::kE3M2, 1.75f},
               {ElementFormat::kE4M3, 1.75f},
               {ElementFormat::kE5M2, 1.75f}};
  for (const auto& b : bands) {
    const float scale = std::ldexp(1.0f, traits(b.f).emax);
    EXPECT_EQ(first_value_after(b.f, ScaleRule::kFloor, {b.edge}), b.edge);
    const float above = std::nextafter(b.edge, 2.0f) * 1.01f;
    EXPECT_EQ(first_value_after(b.f, ScaleRule::kFloor, {above}),
              float(traits(b.f).max_normal) / scale)
        << traits(b.f).name;
  }
}

TEST(ScaleRule, Int8AmaxJustUnderTwo) {
  // 1.9921875 = 255/128 is the first INT8 clipping value: it rounds to 128/64 and saturates to
  // 127/64 under FLOOR; EVEN moves to the next binade (scale 2) and keeps it within a quantum.
  EXPECT_EQ(first_value_after(ElementFormat::kInt8, ScaleRule::kFloor, {1.9921875f}), 1.984375f);
  EXPECT_EQ(first_value_after(ElementFormat::kInt8, ScaleRule::kFloor, {1.984375f}), 1.984375f);
  EXPECT_EQ(first_value_after(ElementFormat::kInt8, ScaleRule::kEven, {1.9921875f}), 2.0f);
  EXPECT_EQ(first_value_after(ElementFormat::kInt8, ScaleRule::kRceil, {1.9921875f}), 2.0f);
  EXPECT_EQ(first_value_after(ElementFormat::kInt8, ScaleRule::kCeil, {1.9921875f}), 2.0f);
}

TEST(E8m0, EdgeBytesDecodeAsTheSpecSays) {
  EXPECT_EQ(std::bit_cast<uint32_t>(e8m0_to_float(0x00)), 0x00400000u);  // 2^-127, subnormal
  EXPECT_EQ(e8m0_to_float(0x01), std::ldexp(1.0f, -126));
  EXPECT_EQ(e8m0_to_float(0x7F), 1.0f);
  EXPECT_EQ(e8m0_to_float(0xFE), std::ldexp(1.0f, 127));
  EXPECT_TRUE(std::isnan(e8m0_to_float(0xFF)));
  EXPECT_EQ(scale_byte_for_exponent(128), 0xFF);
  EXPECT_EQ(scale_byte_for_exponent(127), 0xFE);
  EXPECT_EQ(scale_byte_for_exponent(-127), 0x00);
  EXPECT_EQ(scale_byte_for_exponent(-130), 0x00);
}

}  // namespace
}  // namespace mx
