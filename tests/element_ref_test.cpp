// The reference element codec on hand-checked values from the OCP v1.0 tables.
#include <gtest/gtest.h>

#include <cmath>

#include "mx/core/element_ref.h"

namespace mx {
namespace {

const FormatTraits& E2M1() {
  return traits(ElementFormat::kE2M1);
}
const FormatTraits& E4M3() {
  return traits(ElementFormat::kE4M3);
}
const FormatTraits& E5M2() {
  return traits(ElementFormat::kE5M2);
}
const FormatTraits& INT8() {
  return traits(ElementFormat::kInt8);
}

TEST(ElementRef, E2M1DecodesTheEightOcpMagnitudes) {
  const double want[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(decode_element(E2M1(), uint8_t(c)), want[c]);
    EXPECT_EQ(decode_element(E2M1(), uint8_t(c | 8)), -want[c]);
  }
}

TEST(ElementRef, E2M1TiesRoundToEvenCode) {
  // 0.75 lies between 0.5 (code 1) and 1.0 (code 2): even code wins. Likewise 1.75 -> 2, 3.5 -> 4.
  EXPECT_EQ(encode_element_ref(E2M1(), 0.75f, 0, Rounding::kNearestEven), 2);
  EXPECT_EQ(encode_element_ref(E2M1(), 1.75f, 0, Rounding::kNearestEven), 4);
  EXPECT_EQ(encode_element_ref(E2M1(), 3.5f, 0, Rounding::kNearestEven), 6);
  EXPECT_EQ(encode_element_ref(E2M1(), 2.5f, 0, Rounding::kNearestEven), 4);   // 2 (even) not 3
  EXPECT_EQ(encode_element_ref(E2M1(), 2.5f, 0, Rounding::kNearestAway), 5);   // away: 3
  EXPECT_EQ(encode_element_ref(E2M1(), 0.25f, 0, Rounding::kNearestEven), 0);  // tie with 0
  EXPECT_EQ(encode_element_ref(E2M1(), -0.25f, 0, Rounding::kNearestAway), 0x9);
}

TEST(ElementRef, OverflowSaturatesToMaxNormalKeepingSign) {
  EXPECT_EQ(encode_element_ref(E2M1(), 7.0f, 0, Rounding::kNearestEven), 0x7);
  EXPECT_EQ(encode_element_ref(E2M1(), -100.0f, 0, Rounding::kNearestEven), 0xF);
  EXPECT_EQ(encode_element_ref(E4M3(), 500.0f, 0, Rounding::kNearestEven), 0x7E);
  EXPECT_EQ(encode_element_ref(E5M2(), 1e9f, 0, Rounding::kNearestEven), 0x7B);  // not Inf
  EXPECT_EQ(encode_element_ref(INT8(), 2.0f, 0, Rounding::kNearestEven), 127);
  EXPECT_EQ(encode_element_ref(INT8(), -2.0f, 0, Rounding::kNearestEven), 0x81);  // -127, not -128
}

TEST(ElementRef, ScaleDividesExactly) {
  // 448 * 2^-3 = 56 is exactly an E4M3 value.
  EXPECT_EQ(decode_element(E4M3(), encode_element_ref(E4M3(), 448.0f, 3, Rounding::kNearestEven)),
            56.0);
  EXPECT_EQ(encode_element_ref(INT8(), 1.0f, 0, Rounding::kNearestEven), 64);
}

TEST(ElementRef, SignedZeroKeepsItsSignInFloatFormats) {
  EXPECT_EQ(encode_element_ref(E4M3(), -0.0f, 0, Rounding::kNearestEven), 0x80);
  EXPECT_EQ(encode_element_ref(E4M3(), -1e-30f, 0, Rounding::kNearestEven), 0x80);
  EXPECT_EQ(encode_element_ref(INT8(), -1e-30f, 0, Rounding::kNearestEven), 0);
}

TEST(ElementRef, E4M3AndE5M2SpecialCodesDecode) {
  EXPECT_TRUE(std::isnan(decode_element(E4M3(), 0x7F)));
  EXPECT_EQ(decode_element(E4M3(), 0x7E), 448.0);
  EXPECT_EQ(decode_element(E5M2(), 0x7C), INFINITY);
  EXPECT_TRUE(std::isnan(decode_element(E5M2(), 0x7D)));
  EXPECT_EQ(decode_element(INT8(), 0x80), -2.0);  // decodable though never produced
}

}  // namespace
}  // namespace mx
