// Conversions between MxTensor and the ggml, gpt-oss and swizzled-scale layouts: bytes written
// by hand from each layout's definition, lossless round trips on quantized random tensors, and
// the errors for tensors a layout cannot hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "mx/core/layout_ggml.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/core/layout_swizzle.h"
#include "mx/core/quantize_ref.h"
#include "tests/test_data.h"

namespace mx {
namespace {

using Bytes = std::vector<uint8_t>;
using Shape = std::vector<int64_t>;

MxTensor quantized(const Shape& shape, const QuantSpec& spec, uint64_t seed) {
  const std::vector<float> values = testing::stress_values(element_count(shape), seed, true);
  std::string error;
  MxTensor t = quantize_ref(values, shape, spec, &error);
  EXPECT_EQ(error, "");
  return t;
}

void expect_same_tensor(const MxTensor& got, const MxTensor& want) {
  ASSERT_EQ(got.shape, want.shape);
  ASSERT_EQ(got.elements, want.elements);
  ASSERT_EQ(got.scales, want.scales);
  ASSERT_EQ(got.offsets, want.offsets);
  const std::vector<float> a = dequantize_ref(got);
  const std::vector<float> b = dequantize_ref(want);
  ASSERT_EQ(a.size(), b.size());
  // Bitwise, so that NaN blocks and signed zeros count too.
  if (!a.empty()) {
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  }
}

// Two blocks of a [2, 32] MXFP4 tensor: codes 0..15,0..15 with scale 0x7F, then 0..15,15..0
// with scale 0x80. The second distinguishes ggml's low and high nibble; the first alone would
// not, as each of its ggml bytes is j | j << 4.
MxTensor two_hand_blocks() {
  std::string error;
  MxTensor t = make_mx_tensor(Shape{2, 32}, mxfp4_rowwise_spec(), &error);
  EXPECT_EQ(error, "");
  // Ours: byte i holds slot 2i (low nibble) and slot 2i + 1 (high nibble).
  t.elements = {0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,   // slots 0..15
                0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,   // slots 16..31
                0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,   // slots 0..15
                0xEF, 0xCD, 0xAB, 0x89, 0x67, 0x45, 0x23, 0x01};  // slots 16..31 = 15..0
  t.scales = {0x7F, 0x80};
  return t;
}

// ggml: scale byte, then byte j = slot j | slot (j + 16) << 4.
const Bytes kTwoHandBlocksGgml = {0x7F, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,  // block 0
                                  0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF,        //
                                  0x80, 0xF0, 0xE1, 0xD2, 0xC3, 0xB4, 0xA5, 0x96, 0x87,  // block 1
                                  0x78, 0x69, 0x5A, 0x4B, 0x3C, 0x2D, 0x1E, 0x0F};

TEST(LayoutGgml, HandWrittenBlocks) {
  std::string error;
  EXPECT_EQ(to_ggml_mxfp4_bytes(two_hand_blocks(), &error), kTwoHandBlocksGgml);
  EXPECT_EQ(error, "");

  const std::vector<BlockMxfp4> blocks = to_ggml_mxfp4(two_hand_blocks(), &error);
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[1].e, 0x80);
  EXPECT_EQ(blocks[1].qs[0], 0xF0);
  EXPECT_EQ(blocks[1].qs[15], 0x0F);

  const MxTensor back = from_ggml_mxfp4_bytes(kTwoHandBlocksGgml, Shape{2, 32}, &error);
  EXPECT_EQ(error, "");
  expect_same_tensor(back, two_hand_blocks());
}

// Decoding ggml's way (a table of doubled E2M1 values, times 2^(e - 128)) gives our values, so
// the nibbles mean the same codes. Scale 0xFF is left out: ggml reads it as +Inf, we as NaN.
TEST(LayoutGgml, DecodesAsGgmlDoes) {
  const int8_t kDoubled[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255);
  Bytes raw(17 * 24);
  for (size_t i = 0; i < raw.size(); ++i) raw[i] = (i % 17 == 0) ? byte(rng) % 255 : byte(rng);

  std::string error;
  const MxTensor t = from_ggml_mxfp4_bytes(raw, Shape{3, 256}, &error);
  ASSERT_EQ(error, "");
  const std::vector<float> ours = dequantize_ref(t);
  for (int b = 0; b < 24; ++b) {
    const uint8_t* block = raw.data() + 17 * b;
    for (int s = 0; s < 32; ++s) {
      const int nibble = (block[1 + s % 16] >> (s < 16 ? 0 : 4)) & 0xF;
      const float want = std::ldexp(float(kDoubled[nibble]), block[0] - 128);
      ASSERT_EQ(ours[32 * b + s], want) << "block " << b << " slot " << s;
    }
  }
}

TEST(LayoutGgml, RoundTripsQuantizedTensors) {
  for (const Shape& shape : {Shape{32}, Shape{3, 96}, Shape{2, 5, 128}, Shape{0, 64}}) {
    const MxTensor t = quantized(shape, mxfp4_rowwise_spec(), 11);
    std::string error;
    const Bytes bytes = to_ggml_mxfp4_bytes(t, &error);
    ASSERT_EQ(error, "");
    ASSERT_EQ(bytes.size(), 17 * t.scales.size());
    expect_same_tensor(from_ggml_mxfp4_bytes(bytes, shape, &error), t);
    ASSERT_EQ(error, "");

    const std::vector<BlockMxfp4> blocks = to_ggml_mxfp4(t, &error);
    expect_same_tensor(from_ggml_mxfp4(blocks, shape, &error), t);
    ASSERT_EQ(error, "");
  }
}

// Every byte pattern survives ggml -> MxTensor -> ggml, reserved scale 0xFF included.
TEST(LayoutGgml, RoundTripsArbitraryBytes) {
  std::mt19937 rng(3);
  Bytes raw(17 * 40);
  for (uint8_t& b : raw) b = static_cast<uint8_t>(rng());
  std::string error;
  const MxTensor t = from_ggml_mxfp4_bytes(raw, Shape{4, 2, 160}, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(to_ggml_mxfp4_bytes(t, &error), raw);
}

// Tensors that ggml (and gpt-oss) cannot store, with a word of the reason each must give.
std::vector<std::pair<MxTensor, std::string>> unstorable_tensors() {
  std::vector<std::pair<MxTensor, std::string>> out;
  QuantSpec s = mxfp4_rowwise_spec();
  s.format = ElementFormat::kE4M3;
  out.emplace_back(quantized({2, 64}, s, 1), "E2M1");
  s = mxfp4_rowwise_spec();
  s.asymmetric = true;
  out.emplace_back(quantized({2, 64}, s, 1), "asymmetric");
  s = mxfp4_rowwise_spec();
  s.tile_rows = s.tile_cols = 2;
  out.emplace_back(quantized({2, 64}, s, 1), "tiles");
  s = mxfp4_rowwise_spec();
  s.block_size = 16;
  out.emplace_back(quantized({2, 64}, s, 1), "blocks of 32");
  s = mxfp4_rowwise_spec();
  s.axis = 0;
  out.emplace_back(quantized({64, 64}, s, 1), "last axis");
  out.emplace_back(quantized({2, 48}, mxfp4_rowwise_spec(), 1), "multiple of 32");
  MxTensor short_elements = quantized({2, 64}, mxfp4_rowwise_spec(), 1);
  short_elements.elements.pop_back();
  out.emplace_back(short_elements, "element byte count");
  return out;
}

TEST(LayoutGgml, RejectsWhatItCannotStore) {
  for (const auto& [t, reason] : unstorable_tensors()) {
    SCOPED_TRACE(describe(t.spec));
    std::string error;
    EXPECT_TRUE(to_ggml_mxfp4(t, &error).empty());
    EXPECT_NE(error.find(reason), std::string::npos) << error;
    EXPECT_TRUE(to_ggml_mxfp4_bytes(t, &error).empty());
    EXPECT_NE(error.find(reason), std::string::npos) << error;
  }
  std::string error;
  from_ggml_mxfp4_bytes(Bytes(16), Shape{32}, &error);
  EXPECT_NE(error.find("17 bytes per block"), std::string::npos) << error;
  from_ggml_mxfp4_bytes(Bytes(17), Shape{64}, &error);
  EXPECT_NE(error.find("1 blocks, the shape needs 2"), std::string::npos) << error;
  from_ggml_mxfp4_bytes(Bytes(17 * 2), Shape{2, 40}, &error);
  EXPECT_NE(error, "");
  from_ggml_mxfp4_bytes(Bytes(17), Shape{}, &error);
  EXPECT_NE(error, "");
  from_ggml_mxfp4_bytes(Bytes(17), Shape{-1, -32}, &error);
  EXPECT_NE(error, "");
}

// quantize_ref's own output is already in gpt-oss order. Values from the E2M1 grid with a block
// maximum of 6 get scale 2^0 (byte 127) and code = position in {0, .5, 1, 1.5, 2, 3, 4, 6}, plus
// 8 when negative; element 2i goes to the low nibble of byte i.
TEST(LayoutGptOss, QuantizedBytesAreGptOssBytes) {
  const float kGrid[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  std::vector<float> values(64);
  for (int k = 0; k < 64; ++k) {
    const int code = k < 48 ? k % 16 : 15 - k % 16;  // as two_hand_blocks()
    values[k] = (code & 8 ? -1.0f : 1.0f) * kGrid[code & 7];
  }
  std::string error;
  const MxTensor t = quantize_ref(values, Shape{1, 64}, mxfp4_rowwise_spec(), &error);
  ASSERT_EQ(error, "");
  const GptOssMxfp4 g = to_gpt_oss(t, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(g.blocks, two_hand_blocks().elements);
  EXPECT_EQ(g.scales, (Bytes{127, 127}));
  EXPECT_EQ(g.blocks_shape, (Shape{1, 2, 16}));
  EXPECT_EQ(g.scales_shape, (Shape{1, 2}));
}

TEST(LayoutGptOss, RoundTripsQuantizedTensors) {
  for (const Shape& shape : {Shape{64}, Shape{7, 32}, Shape{2, 3, 4, 96}}) {
    const MxTensor t = quantized(shape, mxfp4_rowwise_spec(), 5);
    std::string error;
    const GptOssMxfp4 g = to_gpt_oss(t, &error);
    ASSERT_EQ(error, "");
    Shape scales_shape = shape;
    scales_shape.back() /= 32;
    Shape blocks_shape = scales_shape;
    blocks_shape.push_back(16);
    EXPECT_EQ(g.scales_shape, scales_shape);
    EXPECT_EQ(g.blocks_shape, blocks_shape);
    EXPECT_EQ(g.blocks, t.elements);  // the canonical layout is gpt-oss's, byte for byte
    EXPECT_EQ(g.scales, t.scales);
    expect_same_tensor(from_gpt_oss(g, &error), t);
    ASSERT_EQ(error, "");
  }
}

TEST(LayoutGptOss, RejectsWhatItCannotStore) {
  for (const auto& [t, reason] : unstorable_tensors()) {
    std::string error;
    to_gpt_oss(t, &error);
    EXPECT_NE(error.find(reason), std::string::npos) << error;
  }
  std::string error;
  const GptOssMxfp4 good = to_gpt_oss(quantized({3, 64}, mxfp4_rowwise_spec(), 2), &error);
  ASSERT_EQ(error, "");
  from_gpt_oss(good, &error);
  ASSERT_EQ(error, "");

  GptOssMxfp4 bad = good;
  bad.blocks_shape.back() = 8;
  from_gpt_oss(bad, &error);
  EXPECT_NE(error, "");
  bad = good;
  bad.scales_shape = {3, 1};
  from_gpt_oss(bad, &error);
  EXPECT_NE(error, "");
  bad = good;
  bad.scales.pop_back();
  from_gpt_oss(bad, &error);
  EXPECT_NE(error, "");
  bad = good;
  bad.blocks.push_back(0);
  from_gpt_oss(bad, &error);
  EXPECT_NE(error, "");
  bad = good;
  bad.blocks_shape = {16};
  bad.scales_shape = {};
  from_gpt_oss(bad, &error);
  EXPECT_NE(error, "");
}

// A 130 x 5 matrix of nonzero bytes: padded to 256 x 8, i.e. 2 x 2 tiles of 512 bytes.
Bytes numbered_matrix(int64_t rows, int64_t cols) {
  Bytes m(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) m[i] = static_cast<uint8_t>(i % 251 + 1);
  return m;
}

TEST(LayoutSwizzle, HandComputedPositions) {
  const int64_t rows = 130, cols = 5;
  const Bytes m = numbered_matrix(rows, cols);
  std::string error;
  const Bytes s = swizzle_scales(m, rows, cols, &error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(s.size(), 2048u);
  auto at = [&](int r, int c) { return m[r * cols + c]; };
  // (row, col) -> tile (row/128)*2 + col/4, then (r%32)*16 + (r/32)*4 + c%4 inside it.
  EXPECT_EQ(s[0], at(0, 0));
  EXPECT_EQ(s[3], at(0, 3));
  EXPECT_EQ(s[16], at(1, 0));
  EXPECT_EQ(s[4], at(32, 0));
  EXPECT_EQ(s[22], at(33, 2));
  EXPECT_EQ(s[78], at(100, 2));
  EXPECT_EQ(s[499], at(31, 3));
  EXPECT_EQ(s[511], at(127, 3));
  EXPECT_EQ(s[512], at(0, 4));     // tile (0, 1)
  EXPECT_EQ(s[592], at(5, 4));     // tile (0, 1), r 5
  EXPECT_EQ(s[1024], at(128, 0));  // tile (1, 0)
  EXPECT_EQ(s[1041], at(129, 1));
  EXPECT_EQ(s[1552], at(129, 4));  // tile (1, 1)
  EXPECT_EQ(swizzled_scale_offset(129, 4, cols), 1552);
  EXPECT_EQ(swizzled_scale_offset(100, 2, cols), 78);
  // Padding: column 5 of tile (0, 1), row 130 of tile (1, 0), the last byte.
  EXPECT_EQ(s[513], 0);
  EXPECT_EQ(s[1056], 0);
  EXPECT_EQ(s[2047], 0);
  // Every real entry lands somewhere distinct and all else is padding.
  EXPECT_EQ(std::count(s.begin(), s.end(), 0), 2048 - rows * cols);
}

// nvmath-python's get_block_scale_offset documents, for an NVFP4 operand of 128 x 128 (blocks of
// 16, so an 128 x 8 scale matrix), that scale (5, 2) is at offset 82 and (5, 5) at 593.
TEST(LayoutSwizzle, MatchesNvmathWorkedExample) {
  Bytes m(128 * 8, 0);
  m[5 * 8 + 2] = 0xA2;
  m[5 * 8 + 5] = 0xA5;
  std::string error;
  const Bytes s = swizzle_scales(m, 128, 8, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(s[82], 0xA2);
  EXPECT_EQ(s[593], 0xA5);
}

// The layout built in output order, as torchao's to_blocked views it: tiles, then a 32 x 4 x 4
// array indexed by (r % 32, r / 32, c).
Bytes swizzled_in_output_order(const Bytes& m, int64_t rows, int64_t cols) {
  Bytes out;
  const int64_t tiles_down = (rows + 127) / 128, tiles_across = (cols + 3) / 4;
  for (int64_t rb = 0; rb < tiles_down; ++rb) {
    for (int64_t cb = 0; cb < tiles_across; ++cb) {
      for (int64_t i = 0; i < 32; ++i) {
        for (int64_t j = 0; j < 4; ++j) {
          for (int64_t c = 0; c < 4; ++c) {
            const int64_t row = rb * 128 + j * 32 + i, col = cb * 4 + c;
            out.push_back(row < rows && col < cols ? m[row * cols + col] : 0);
          }
        }
      }
    }
  }
  return out;
}

TEST(LayoutSwizzle, RoundTripsEveryShape) {
  for (int64_t rows : {0, 1, 31, 127, 128, 129, 300}) {
    for (int64_t cols : {0, 1, 3, 4, 5, 9}) {
      SCOPED_TRACE(std::to_string(rows) + " x " + std::to_string(cols));
      const Bytes m = numbered_matrix(rows, cols);
      std::string error;
      const Bytes s = swizzle_scales(m, rows, cols, &error);
      ASSERT_EQ(error, "");
      ASSERT_EQ(int64_t(s.size()), swizzled_scale_bytes(rows, cols));
      ASSERT_EQ(s, swizzled_in_output_order(m, rows, cols));
      ASSERT_EQ(unswizzle_scales(s, rows, cols, &error), m);
      ASSERT_EQ(error, "");
    }
  }
}

TEST(LayoutSwizzle, UnswizzleIgnoresPadding) {
  const Bytes m = numbered_matrix(130, 5);
  std::string error;
  Bytes s = swizzle_scales(m, 130, 5, &error);
  for (uint8_t& b : s) {
    if (b == 0) b = 0xAA;  // the matrix has no zero bytes, so these are all padding
  }
  EXPECT_EQ(unswizzle_scales(s, 130, 5, &error), m);
  EXPECT_EQ(error, "");
}

TEST(LayoutSwizzle, RejectsWrongSizes) {
  std::string error;
  EXPECT_TRUE(swizzle_scales(Bytes(649), 130, 5, &error).empty());
  EXPECT_NE(error, "");
  EXPECT_TRUE(unswizzle_scales(Bytes(2047), 130, 5, &error).empty());
  EXPECT_NE(error.find("2048 bytes, got 2047"), std::string::npos) << error;
  EXPECT_TRUE(swizzle_scales(Bytes(), -1, 0, &error).empty());
  EXPECT_NE(error, "");
  EXPECT_TRUE(unswizzle_scales(Bytes(), 0, -4, &error).empty());
  EXPECT_NE(error, "");
}

TEST(LayoutSwizzle, TensorScalesRoundTrip) {
  QuantSpec fp6 = mxfp4_rowwise_spec();
  fp6.format = ElementFormat::kE3M2;
  QuantSpec fp8 = fp6;
  fp8.format = ElementFormat::kE4M3;
  for (const QuantSpec& spec : {mxfp4_rowwise_spec(), fp6, fp8}) {
    SCOPED_TRACE(describe(spec));
    const MxTensor t = quantized({3, 50, 96}, spec, 9);  // 150 rows of 3 blocks
    std::string error;
    int64_t rows = 0, cols = 0;
    ASSERT_EQ(scale_matrix_dims(t, &rows, &cols), "");
    EXPECT_EQ(rows, 150);
    EXPECT_EQ(cols, 3);
    const Bytes s = swizzle_tensor_scales(t, &error);
    ASSERT_EQ(error, "");
    ASSERT_EQ(s.size(), 256u * 4);
    // Batch 1, row 10, block 2 is matrix row 60: (60 % 32) * 16 + (60 / 32) * 4 + 2 = 454.
    EXPECT_EQ(s[454], t.scales[(1 * 50 + 10) * 3 + 2]);

    MxTensor back = t;
    back.scales.assign(back.scales.size(), 0);
    ASSERT_EQ(unswizzle_tensor_scales(s, &back), "");
    expect_same_tensor(back, t);
  }
  // A last dimension that does not fill its last block still has one scale per block.
  const MxTensor ragged = quantized({4, 40}, mxfp4_rowwise_spec(), 1);
  int64_t rows = 0, cols = 0;
  ASSERT_EQ(scale_matrix_dims(ragged, &rows, &cols), "");
  EXPECT_EQ(rows, 4);
  EXPECT_EQ(cols, 2);
}

TEST(LayoutSwizzle, TensorRejectsOtherOrganisations) {
  std::string error;
  QuantSpec s = mxfp4_rowwise_spec();
  s.axis = 0;
  EXPECT_TRUE(swizzle_tensor_scales(quantized({64, 64}, s, 1), &error).empty());
  EXPECT_NE(error, "");
  s = mxfp4_rowwise_spec();
  s.tile_rows = s.tile_cols = 4;
  EXPECT_TRUE(swizzle_tensor_scales(quantized({64, 64}, s, 1), &error).empty());
  EXPECT_NE(error, "");
  s = mxfp4_rowwise_spec();
  s.asymmetric = true;
  EXPECT_TRUE(swizzle_tensor_scales(quantized({64, 64}, s, 1), &error).empty());
  EXPECT_NE(error, "");

  MxTensor t = quantized({64, 64}, mxfp4_rowwise_spec(), 1);
  const Bytes before = t.scales;
  EXPECT_NE(unswizzle_tensor_scales(Bytes(511), &t), "");
  EXPECT_EQ(t.scales, before);  // untouched on error
}

// One tensor through every layout in turn comes back bit for bit.
TEST(LayoutRoundTrip, ThroughEveryLayout) {
  const MxTensor t = quantized({5, 7, 160}, mxfp4_rowwise_spec(), 21);
  std::string error;
  const MxTensor a = from_ggml_mxfp4_bytes(to_ggml_mxfp4_bytes(t, &error), t.shape, &error);
  ASSERT_EQ(error, "");
  const MxTensor b = from_gpt_oss(to_gpt_oss(a, &error), &error);
  ASSERT_EQ(error, "");
  MxTensor c = b;
  ASSERT_EQ(unswizzle_tensor_scales(swizzle_tensor_scales(b, &error), &c), "");
  ASSERT_EQ(error, "");
  expect_same_tensor(c, t);
}

}  // namespace
}  // namespace mx
