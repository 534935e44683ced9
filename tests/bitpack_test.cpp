// The packed code stream: code i of width w at bits [w*i, w*i + w), counted from bit 0 of byte 0.
// Expected bytes below are worked out by hand from that definition.
#include <gtest/gtest.h>

#include <random>

#include "mx/core/bitpack.h"

namespace mx {
namespace {

using Bytes = std::vector<uint8_t>;

Bytes pack(const Bytes& codes, int bits) {
  Bytes out(packed_bytes(int64_t(codes.size()), bits), 0);
  pack_codes(codes, bits, 0, out);
  return out;
}

Bytes unpack(const Bytes& packed, int bits, int64_t first, size_t count) {
  Bytes out(count);
  unpack_codes(packed, bits, first, out);
  return out;
}

TEST(Bitpack, PackedBytes) {
  EXPECT_EQ(packed_bytes(0, 4), 0);
  EXPECT_EQ(packed_bytes(3, 4), 2);
  EXPECT_EQ(packed_bytes(4, 6), 3);
  EXPECT_EQ(packed_bytes(5, 6), 4);
  EXPECT_EQ(packed_bytes(5, 2), 2);
  EXPECT_EQ(packed_bytes(3, 8), 3);
}

TEST(Bitpack, Fp4LowNibbleFirst) {
  EXPECT_EQ(pack({0x1, 0x2}, 4), (Bytes{0x21}));
  EXPECT_EQ(pack({0x1, 0x2, 0xF}, 4), (Bytes{0x21, 0x0F}));  // odd count: high nibble left 0
  EXPECT_EQ(unpack({0x21, 0x0F}, 4, 0, 3), (Bytes{0x1, 0x2, 0xF}));
}

// Four 6-bit codes in three bytes: a in byte 0 bits 0-5; b in byte 0 bits 6-7 (its low two
// bits) and byte 1 bits 0-3; c in byte 1 bits 4-7 (its low four bits) and byte 2 bits 0-1;
// d in byte 2 bits 2-7.
TEST(Bitpack, Fp6FourInThreeBytes) {
  EXPECT_EQ(pack({0x3F, 0, 0, 0}, 6), (Bytes{0x3F, 0x00, 0x00}));
  EXPECT_EQ(pack({0, 0x3F, 0, 0}, 6), (Bytes{0xC0, 0x0F, 0x00}));
  EXPECT_EQ(pack({0, 0, 0x3F, 0}, 6), (Bytes{0x00, 0xF0, 0x03}));
  EXPECT_EQ(pack({0, 0, 0, 0x3F}, 6), (Bytes{0x00, 0x00, 0xFC}));
  // a = 000001, b = 100010, c = 001100, d = 110101:
  // byte 0 = b[1:0] a = 10 000001, byte 1 = c[3:0] b[5:2] = 1100 1000, byte 2 = d c[5:4] =
  // 110101 00.
  EXPECT_EQ(pack({0x01, 0x22, 0x0C, 0x35}, 6), (Bytes{0x81, 0xC8, 0xD4}));
  EXPECT_EQ(unpack({0x81, 0xC8, 0xD4}, 6, 1, 2), (Bytes{0x22, 0x0C}));
  // Five codes take 30 bits: the fifth sits in byte 3 bits 0-5.
  EXPECT_EQ(pack({0, 0, 0, 0, 0x2A}, 6), (Bytes{0, 0, 0, 0x2A}));
}

TEST(Bitpack, Int2FourPerByteLsbFirst) {
  EXPECT_EQ(pack({1, 2, 3, 0}, 2), (Bytes{0x39}));  // 00 11 10 01
  EXPECT_EQ(pack({3, 0, 0, 0, 2}, 2), (Bytes{0x03, 0x02}));
  EXPECT_EQ(unpack({0x39}, 2, 1, 2), (Bytes{2, 3}));
}

TEST(Bitpack, EightBitsOnePerByte) {
  EXPECT_EQ(pack({0xAB, 0xCD, 0x01}, 8), (Bytes{0xAB, 0xCD, 0x01}));
}

// Writing at an unaligned position changes only the bits of the written codes.
TEST(Bitpack, PackPreservesNeighbouringBits) {
  Bytes b = {0xFF, 0xFF, 0xFF};
  pack_codes(Bytes{0}, 6, 1, b);  // bits 6-11
  EXPECT_EQ(b, (Bytes{0x3F, 0xF0, 0xFF}));

  b = {0x12, 0x34};
  pack_codes(Bytes{0x5}, 4, 3, b);  // high nibble of byte 1
  EXPECT_EQ(b, (Bytes{0x12, 0x54}));

  b = {0x00, 0xFF};
  pack_codes(Bytes{0x1}, 2, 5, b);  // byte 1 bits 2-3
  EXPECT_EQ(b, (Bytes{0x00, 0xF7}));

  b = {0xAA, 0xAA, 0xAA, 0xAA};
  pack_codes(Bytes{0x15, 0x2A}, 6, 1, b);  // bits 6-17
  // 0x15 = 010101 at bits 6-11, 0x2A = 101010 at bits 12-17; bits 0-5 and 18-31 keep 0xAA's.
  // byte 0 = 01 101010, byte 1 = 1010 0101, byte 2 = 101010 10.
  EXPECT_EQ(b, (Bytes{0x6A, 0xA5, 0xAA, 0xAA}));
}

TEST(Bitpack, RoundTripsEveryWidthAndCount) {
  std::mt19937 rng(1);
  for (int bits : {2, 4, 6, 8}) {
    for (size_t count : {0, 1, 2, 3, 5, 7, 13, 33, 101}) {
      SCOPED_TRACE(std::to_string(bits) + " bits, " + std::to_string(count) + " codes");
      Bytes codes(count);
      for (uint8_t& c : codes) c = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      const Bytes packed = pack(codes, bits);
      ASSERT_EQ(unpack(packed, bits, 0, count), codes);

      // The same codes written at an odd position into noise read back, and the noise around
      // them is intact.
      const int64_t first = 3;
      Bytes noisy(packed_bytes(first + int64_t(count) + 2, bits));
      for (uint8_t& x : noisy) x = static_cast<uint8_t>(rng());
      const Bytes before = unpack(noisy, bits, 0, first + count + 2);
      pack_codes(codes, bits, first, noisy);
      const Bytes after = unpack(noisy, bits, 0, first + count + 2);
      for (size_t i = 0; i < after.size(); ++i) {
        const bool written = i >= size_t(first) && i < first + count;
        ASSERT_EQ(after[i], written ? codes[i - first] : before[i]) << "code " << i;
      }
    }
  }
}

}  // namespace
}  // namespace mx
