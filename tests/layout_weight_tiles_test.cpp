// The weight-tile layout of the GPU weight-only product: positions written out by hand from
// the layout's definition, and lossless round trips with MX storage for every format.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mx/core/bitpack.h"
#include "mx/core/layout_weight_tiles.h"

namespace mx {
namespace {

// MX storage of an n x k matrix: one code byte per slot (8-bit codes: the byte is the code),
// padding slots zero.
struct Stored {
  std::vector<uint8_t> codes, scales;
};

Stored random_storage(ElementFormat f, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  const int bits = traits(f).bits;
  const int64_t blocks = (k + 31) / 32;
  std::vector<uint8_t> slots(n * blocks * 32, 0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < k; ++c)
      slots[r * blocks * 32 + c] = uint8_t(rng() & ((1u << bits) - 1));
  }
  Stored s;
  s.codes.assign(packed_bytes(n * blocks * 32, bits), 0);
  pack_codes(slots, bits, 0, s.codes);
  s.scales.resize(n * blocks);
  for (auto& b : s.scales) b = uint8_t(rng());
  return s;
}

TEST(WeightTiles, PlacesCodesWhereTheFragmentsNeedThem) {
  // E4M3: one byte per code, so tile byte = code position. 20 x 100: 2 x 4 tiles (K padded to
  // a group of four tiles).
  const int64_t n = 20, k = 100;
  const int64_t blocks = 4;
  std::vector<uint8_t> codes(n * blocks * 32, 0), scales(n * blocks, 0);
  auto at = [&](int64_t row, int64_t col) -> uint8_t& { return codes[row * blocks * 32 + col]; };
  at(1, 2) = 11;    // lane 4*1 + 1 = 5, pair 0, first code: byte 5*32 = 160
  at(9, 3) = 12;    // row 1 + 8 (h = 1): pair 1, second code: byte 163
  at(1, 42) = 13;   // block 1, i = 1, q = 1: pair 8 + 2 = 10: byte 160 + 20 = 180
  at(17, 70) = 14;  // tile (1, 1) = tile 5; row 1, column 6: lane 7, pair 0: 5*1024 + 224
  scales[9 * blocks + 1] = 21;   // group 0; r = 1, h = 1, tile 0, b = 1: byte 16 + 2 + 1
  scales[17 * blocks + 2] = 22;  // tile row 1: group 1; r = 1, h = 0, tile 1, b = 0: 128 + 16 + 4
  std::string error;
  const WeightTiles t = to_weight_tiles(ElementFormat::kE4M3, n, k, codes, scales, &error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(t.codes.size(), 8u * 1024);
  ASSERT_EQ(t.scales.size(), 2u * 128);
  EXPECT_EQ(t.codes[160], 11);
  EXPECT_EQ(t.codes[163], 12);
  EXPECT_EQ(t.codes[180], 13);
  EXPECT_EQ(t.codes[5 * 1024 + 224], 14);
  EXPECT_EQ(t.scales[19], 21);
  EXPECT_EQ(t.scales[148], 22);
  int nonzero = 0;
  for (uint8_t b : t.codes) nonzero += b != 0;
  EXPECT_EQ(nonzero, 4);
}

TEST(WeightTiles, PutsFourBitCodesInTheBitsOfABfloat16) {
  // E2M1 -1.5 (sign 1, exponent 01, mantissa 1) at W(0, 0): lane 0, pair 0 = word 0, slot 0,
  // low half. Its bits land at 6, 7 and 15: 0x80C0, the bfloat16 of -1.5 * 2^-126.
  // E2M1 4.0 (0110) at W(8, 41): lane 0, pair 8 + 2 + 1 = 11 = word 2, slot 3, high half: code
  // bits 1 and 2 at 11 + 16 and 13 + 16.
  const int64_t n = 16, k = 64, blocks = 2;
  std::vector<uint8_t> slots(n * blocks * 32, 0);
  slots[0] = 0xB;
  slots[8 * 64 + 41] = 0x6;
  std::vector<uint8_t> codes(packed_bytes(int64_t(slots.size()), 4), 0);
  pack_codes(slots, 4, 0, codes);
  const std::vector<uint8_t> scales(n * blocks, 127);
  std::string error;
  const WeightTiles t = to_weight_tiles(ElementFormat::kE2M1, n, k, codes, scales, &error);
  ASSERT_EQ(error, "");
  auto word = [&](int i) {
    return uint32_t(t.codes[4 * i]) | uint32_t(t.codes[4 * i + 1]) << 8 |
           uint32_t(t.codes[4 * i + 2]) << 16 | uint32_t(t.codes[4 * i + 3]) << 24;
  };
  EXPECT_EQ(word(0), 0x80C0u);
  EXPECT_EQ(word(1), 0u);
  EXPECT_EQ(word(2), (1u << 27) | (1u << 29));
  int nonzero = 0;
  for (uint8_t b : t.codes) nonzero += b != 0;
  EXPECT_EQ(nonzero, 3);
}

TEST(WeightTiles, RoundTripEveryFormatAndOddShape) {
  const ElementFormat formats[] = {
      ElementFormat::kE4M3, ElementFormat::kE5M2, ElementFormat::kE3M2,
      ElementFormat::kE2M3, ElementFormat::kE2M1, ElementFormat::kInt8,
      ElementFormat::kInt4, ElementFormat::kInt2, ElementFormat::kE3M0};
  uint32_t seed = 1;
  for (ElementFormat f : formats) {
    for (auto [n, k] :
         {std::pair<int64_t, int64_t>{37, 100}, {16, 64}, {1, 1}, {33, 200}, {20, 600}}) {
      const Stored s = random_storage(f, n, k, seed++);
      std::string error;
      const WeightTiles t = to_weight_tiles(f, n, k, s.codes, s.scales, &error);
      ASSERT_EQ(error, "");
      EXPECT_EQ(int64_t(t.codes.size()), weight_tile_code_bytes(f, n, k));
      std::vector<uint8_t> codes, scales;
      ASSERT_EQ(from_weight_tiles(t, &codes, &scales), "");
      EXPECT_EQ(codes, s.codes) << traits(f).name << " " << n << "x" << k;
      EXPECT_EQ(scales, s.scales) << traits(f).name << " " << n << "x" << k;
    }
  }
}

TEST(WeightTiles, RefusesMismatchedSizes) {
  std::string error;
  const std::vector<uint8_t> codes(100), scales(8);
  EXPECT_TRUE(to_weight_tiles(ElementFormat::kE2M1, 4, 64, codes, scales, &error).codes.empty());
  EXPECT_NE(error.find("do not match"), std::string::npos);
  WeightTiles t;
  t.n = 4;
  t.k = 64;
  std::vector<uint8_t> c, s;
  EXPECT_NE(from_weight_tiles(t, &c, &s).find("do not match"), std::string::npos);
}

}  // namespace
}  // namespace mx
