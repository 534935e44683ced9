// Block-level special values, through the reference and the fast path alike.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>

#include "mx/core/e8m0.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx {
namespace {

// Quantizes with both implementations, checks they agree, and returns the reference result.
MxTensor quantize_both(const std::vector<float>& v, std::vector<int64_t> shape, QuantSpec spec) {
  std::string error;
  MxTensor want = quantize_ref(v, shape, spec, &error);
  EXPECT_EQ(error, "");
  MxTensor got;
  EXPECT_EQ(cpu::quantize(v.data(), DType::kF32, shape, spec, &got), "");
  EXPECT_EQ(got.elements, want.elements);
  EXPECT_EQ(got.scales, want.scales);
  return want;
}

QuantSpec format_spec(ElementFormat f) {
  QuantSpec s;
  s.format = f;
  return s;
}

TEST(SpecialValues, NanOrInfAnywhereMakesOnlyThatBlockNan) {
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    for (const FormatTraits& f : all_formats()) {
      std::vector<float> v(96, 1.0f);  // representable in every format
      v[40] = bad;                     // block 1 of 3
      const MxTensor t = quantize_both(v, {96}, format_spec(f.format));
      EXPECT_EQ(t.scales[1], kE8m0Nan);
      const std::vector<float> d = dequantize_ref(t);
      for (int i = 32; i < 64; ++i) EXPECT_TRUE(std::isnan(d[i])) << f.name << " " << i;
      EXPECT_EQ(d[0], 1.0f);
      EXPECT_EQ(d[95], 1.0f);
    }
  }
}

TEST(SpecialValues, AllZeroBlockGetsScaleByteZeroAndZeroCodes) {
  for (const FormatTraits& f : all_formats()) {
    const MxTensor t = quantize_both(std::vector<float>(32, 0.0f), {32}, format_spec(f.format));
    EXPECT_EQ(t.scales[0], 0x00);
    for (uint8_t b : t.elements) EXPECT_EQ(b, 0);
  }
  const MxTensor mxs =
      quantize_both(std::vector<float>(32, 0.0f), {32}, microxcaling_preset(ElementFormat::kInt8));
  EXPECT_EQ(mxs.scales[0], 0x01);
}

TEST(SpecialValues, Float32SubnormalsQuantizeExactlyUnlessFlushed) {
  // amax 2^-140 needs scale 2^-148, below E8M0's range: the scale clamps at 2^-127 and the
  // values still land on E4M3 codes exactly (2^-140 / 2^-127 = 2^-13 is below E4M3's 2^-9,
  // so use values that are representable after the clamp).
  const std::vector<float> v = {std::ldexp(1.0f, -130), std::ldexp(1.5f, -131),
                                std::ldexp(1.0f, -133)};
  const MxTensor t = quantize_both(v, {3}, format_spec(ElementFormat::kE4M3));
  EXPECT_EQ(t.scales[0], 0x00);
  EXPECT_EQ(dequantize_ref(t), v);
  QuantSpec flush = format_spec(ElementFormat::kE4M3);
  flush.flush_subnormals = true;
  for (float x : dequantize_ref(quantize_both(v, {3}, flush))) EXPECT_EQ(x, 0.0f);
}

TEST(SpecialValues, OverflowSaturatesAlsoForE5M2) {
  // With FLOOR, 1.9 * 2^15 is above E5M2's max normal 1.75 * 2^15 at scale 1: saturate.
  const MxTensor t =
      quantize_both({1.9f * 32768, -1.9f * 32768}, {2}, format_spec(ElementFormat::kE5M2));
  EXPECT_EQ(dequantize_ref(t), (std::vector<float>{57344.0f, -57344.0f}));
}

TEST(SpecialValues, ScaleAbove2To127MakesTheBlockNan) {
  QuantSpec spec = format_spec(ElementFormat::kInt2);
  spec.scale_rule = ScaleRule::kCeil;
  const MxTensor t = quantize_both({std::ldexp(1.5f, 127)}, {1}, spec);
  EXPECT_EQ(t.scales[0], kE8m0Nan);
}

TEST(SpecialValues, TailPaddingNeitherCountsNorDecodes) {
  // 33 values: the second block holds one real value and 31 padding slots.
  std::vector<float> v(33, 0.25f);
  v[32] = 3.0f;
  const MxTensor t = quantize_both(v, {33}, format_spec(ElementFormat::kE2M1));
  ASSERT_EQ(t.scales.size(), 2u);
  EXPECT_EQ(t.scales[0], 0x7F - 4);  // amax 0.25: floor(log2 0.25) - emax = -2 - 2
  EXPECT_EQ(t.scales[1], 0x7F - 1);  // amax 3: 1 - 2
  for (size_t i = 16 + 1; i < t.elements.size(); ++i) EXPECT_EQ(t.elements[i], 0) << i;
  EXPECT_EQ(dequantize_ref(t), v);
}

TEST(SpecialValues, ColumnBlocksAndTilesPadAtTheEdges) {
  std::vector<float> v(5 * 3);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i + 1);
  QuantSpec col = format_spec(ElementFormat::kInt8);
  col.axis = 0;
  col.block_size = 4;
  const MxTensor c = quantize_both(v, {5, 3}, col);
  EXPECT_EQ(c.scales.size(), 6u);  // 2 blocks down each of 3 columns
  QuantSpec tile = format_spec(ElementFormat::kInt8);
  tile.tile_rows = tile.tile_cols = 2;
  const MxTensor t = quantize_both(v, {5, 3}, tile);
  EXPECT_EQ(t.scales.size(), 6u);  // 3 tiles down x 2 across
  // A 2x2 tile shares one scale: the last tile holds only v[14] = 15 -> 2^(3 - 0).
  EXPECT_EQ(t.scales[5], 0x7F + 3);
}

}  // namespace
}  // namespace mx
