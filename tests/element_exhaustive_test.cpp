// The reference element codec agrees with the independent oracle for every format and rounding
// mode on every bfloat16 and every float16 bit pattern, at several scales; and the fast CPU
// path agrees with the reference on tensors made of all those patterns.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "mx/core/element_ref.h"
#include "mx/core/half.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/oracle.h"

namespace mx {
namespace {

constexpr Rounding kModes[] = {Rounding::kNearestEven, Rounding::kNearestAway,
                               Rounding::kTowardZero, Rounding::kStochastic};

std::vector<float> all_finite_16bit(bool bf16) {
  std::vector<float> out;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float v = bf16 ? bf16_to_float(uint16_t(bits)) : fp16_to_float(uint16_t(bits));
    if (std::isfinite(v)) out.push_back(v);
  }
  return out;
}

// Scales worth trying for v: none, the FLOOR scale of |v| alone, and both clamping limits.
std::vector<int> scales_for(const FormatTraits& f, float v) {
  std::vector<int> s = {0, -127, 127};
  if (v != 0) {
    int e = 0;
    std::frexp(double(v), &e);
    s.push_back(std::clamp(e - 1 - f.emax, -127, 127));
  }
  return s;
}

void check_all_patterns(bool bf16) {
  const std::vector<float> values = all_finite_16bit(bf16);
  for (const FormatTraits& f : all_formats()) {
    const testing::OracleFormat o = testing::oracle_format(f);
    int64_t failures = 0;
    for (Rounding mode : kModes) {
      for (float v : values) {
        for (int s : scales_for(f, v)) {
          const double x = std::ldexp(double(v), -s);  // exact in double
          std::vector<uint32_t> us = {0};
          if (mode == Rounding::kStochastic) {
            // Either side of the dither where the decision flips, and the extremes.
            const uint32_t fr = testing::oracle_fraction16(o, x);
            us = {0, 0xFFFFu, 0xFFFFu - fr, fr == 0 ? 0xFFFFu : 0x10000u - fr};
          }
          for (uint32_t u : us) {
            const uint8_t got = encode_element_ref(f, v, s, mode, u);
            const uint8_t want = testing::oracle_encode(o, x, mode, u);
            if (got != want && ++failures <= 5) {
              ADD_FAILURE() << f.name << " " << rounding_name(mode) << " v=" << v << " scale=2^"
                            << s << " u=" << u << ": got 0x" << std::hex << int(got) << " want 0x"
                            << int(want);
            }
          }
        }
      }
    }
    EXPECT_EQ(failures, 0) << f.name;
  }
}

TEST(ElementExhaustive, EveryBfloat16PatternMatchesTheOracleInEveryFormatAndMode) {
  check_all_patterns(true);
}

TEST(ElementExhaustive, EveryFloat16PatternMatchesTheOracleInEveryFormatAndMode) {
  check_all_patterns(false);
}

TEST(ElementExhaustive, DecodeAgreesWithTheFormatDefinitionForEveryCode) {
  for (const FormatTraits& f : all_formats()) {
    for (unsigned c = 0; c < (1u << f.bits); ++c) {
      const unsigned sign_bit = 1u << (f.bits - 1);
      double want = 0;
      if (f.is_integer) {
        want = std::ldexp(double(int(c) - (c & sign_bit ? int(1u << f.bits) : 0)), -(f.bits - 2));
      } else {
        want = testing::oracle_magnitude(f, c & ~sign_bit);
        if (c & sign_bit) want = -want;
      }
      const double got = decode_element(f, uint8_t(c));
      if (std::isnan(want)) {
        EXPECT_FALSE(std::isfinite(got)) << f.name << " code " << c;
      } else {
        EXPECT_EQ(got, want) << f.name << " code " << c;
      }
    }
  }
}

// All the patterns as one tensor: blocks of 32 consecutive patterns share a scale, so every
// element meets many different scales.
TEST(ElementExhaustive, FastPathEqualsReferenceOnTensorsOfEvery16BitPattern) {
  for (bool bf16 : {true, false}) {
    std::vector<float> values = all_finite_16bit(bf16);
    values.resize(values.size() / 64 * 64);
    const std::vector<int64_t> shape = {int64_t(values.size() / 64), 64};
    for (const FormatTraits& f : all_formats()) {
      for (Rounding mode : kModes) {
        for (ScaleRule rule :
             {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil}) {
          QuantSpec spec;
          spec.format = f.format;
          spec.rounding = mode;
          spec.scale_rule = rule;
          spec.seed = 3;
          std::string error;
          const MxTensor want = quantize_ref(values, shape, spec, &error);
          for (cpu::SimdTarget target : cpu::supported_targets()) {
            cpu::Options options;
            options.target = target;
            MxTensor got;
            ASSERT_EQ(cpu::quantize(values.data(), DType::kF32, shape, spec, &got, options), "");
            ASSERT_TRUE(got.elements == want.elements && got.scales == want.scales)
                << describe(spec) << " on " << cpu::target_name(target);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace mx
