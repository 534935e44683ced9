#include "mx/core/layout_weight_tiles.h"

#include "mx/core/bitpack.h"

namespace mx {

namespace {

constexpr int kTileRows = 16;
constexpr int kTileCols = 64;
constexpr int64_t kCodesPerTile = kTileRows * kTileCols;

int64_t blocks_per_row(int64_t k) {
  return (k + 31) / 32;
}

// Code position of W (row, col) in the tiled layout.
int64_t tiled_position(int64_t row, int64_t col, int64_t tile_columns) {
  const int64_t tile = (row / kTileRows) * tile_columns + col / kTileCols;
  const int rr = int(row % kTileRows);
  const int cc = int(col % kTileCols);
  const int h = rr / 8, r = rr % 8;
  const int b = cc / 32, s = cc % 32 / 16, i = cc % 16 / 8, q = cc % 8 / 2, e = cc % 2;
  const int lane = 4 * r + q;
  const int pair = 8 * b + 4 * s + 2 * i + h;
  return tile * kCodesPerTile + lane * 32 + 2 * pair + e;
}

// Bit positions of a 4-bit code's bits 0..3 in its half of a word, by slot (see the header).
constexpr int kNibbleBits[4][4] = {{6, 7, 8, 15}, {3, 4, 5, 12}, {0, 1, 2, 9}, {10, 11, 13, 14}};

// A lane word of 4-bit codes in storage order (code 2j + e of the word at bits 4(2j + e)) to
// the slot arrangement, and back.
uint32_t arrange_nibbles(uint32_t stored) {
  uint32_t out = 0;
  for (int j = 0; j < 4; ++j) {
    for (int e = 0; e < 2; ++e) {
      const uint32_t code = (stored >> (4 * (2 * j + e))) & 0xFu;
      for (int bit = 0; bit < 4; ++bit)
        out |= ((code >> bit) & 1u) << (kNibbleBits[j][bit] + 16 * e);
    }
  }
  return out;
}

uint32_t store_nibbles(uint32_t arranged) {
  uint32_t out = 0;
  for (int j = 0; j < 4; ++j) {
    for (int e = 0; e < 2; ++e) {
      uint32_t code = 0;
      for (int bit = 0; bit < 4; ++bit)
        code |= ((arranged >> (kNibbleBits[j][bit] + 16 * e)) & 1u) << bit;
      out |= code << (4 * (2 * j + e));
    }
  }
  return out;
}

// Applies `f` to every little-endian 32-bit word of `bytes` (a multiple of 4 long).
template <typename F>
void map_words(std::vector<uint8_t>& bytes, F f) {
  for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
    const uint32_t w = uint32_t(bytes[i]) | uint32_t(bytes[i + 1]) << 8 |
                       uint32_t(bytes[i + 2]) << 16 | uint32_t(bytes[i + 3]) << 24;
    const uint32_t m = f(w);
    for (int b = 0; b < 4; ++b) bytes[i + b] = uint8_t(m >> (8 * b));
  }
}

// Byte of the scale of W (row, block) in the grouped scale array.
int64_t scale_position(int64_t row, int64_t block, int64_t groups) {
  const int64_t tile_column = block / 2;
  const int rr = int(row % kTileRows);
  const int64_t group = (row / kTileRows) * groups + tile_column / 4;
  return group * 128 + 16 * (rr % 8) + 4 * (tile_column % 4) + 2 * (block % 2) + rr / 8;
}

}  // namespace

int64_t weight_tile_rows(int64_t n) {
  return (n + kTileRows - 1) / kTileRows;
}
int64_t weight_tile_columns(int64_t k) {
  return 4 * weight_tile_scale_groups(k);
}

int64_t weight_tile_code_bytes(ElementFormat format, int64_t n, int64_t k) {
  return weight_tile_rows(n) * weight_tile_columns(k) * kCodesPerTile * traits(format).bits / 8;
}

int64_t weight_tile_scale_groups(int64_t k) {
  return (k + 4 * kTileCols - 1) / (4 * kTileCols);
}

int64_t weight_tile_scale_bytes(int64_t n, int64_t k) {
  return weight_tile_rows(n) * weight_tile_scale_groups(k) * 128;
}

WeightTiles to_weight_tiles(ElementFormat format, int64_t n, int64_t k,
                            std::span<const uint8_t> codes, std::span<const uint8_t> scales,
                            std::string* error) {
  const int bits = traits(format).bits;
  const int64_t blocks = blocks_per_row(k);
  if (n < 0 || k < 0) {
    *error = "weight tiles: negative dimension";
    return {};
  }
  if (int64_t(codes.size()) != packed_bytes(n * blocks * 32, bits) ||
      int64_t(scales.size()) != n * blocks) {
    *error = "weight tiles: code or scale bytes do not match the shape";
    return {};
  }
  WeightTiles t{format, n, k, {}, {}};
  const int64_t tile_columns = weight_tile_columns(k);
  const int64_t groups = weight_tile_scale_groups(k);
  std::vector<uint8_t> stored(n * blocks * 32);
  unpack_codes(codes, bits, 0, stored);
  std::vector<uint8_t> tiled(weight_tile_rows(n) * tile_columns * kCodesPerTile, 0);
  t.scales.assign(weight_tile_scale_bytes(n, k), 0);
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t col = 0; col < k; ++col) {
      tiled[tiled_position(row, col, tile_columns)] = stored[row * blocks * 32 + col];
    }
    for (int64_t block = 0; block < blocks; ++block) {
      t.scales[scale_position(row, block, groups)] = scales[row * blocks + block];
    }
  }
  t.codes.assign(weight_tile_code_bytes(format, n, k), 0);
  pack_codes(tiled, bits, 0, t.codes);
  if (bits == 4) map_words(t.codes, arrange_nibbles);
  return t;
}

std::string from_weight_tiles(const WeightTiles& t, std::vector<uint8_t>* codes,
                              std::vector<uint8_t>* scales) {
  const int bits = traits(t.format).bits;
  if (t.n < 0 || t.k < 0) return "weight tiles: negative dimension";
  if (int64_t(t.codes.size()) != weight_tile_code_bytes(t.format, t.n, t.k) ||
      int64_t(t.scales.size()) != weight_tile_scale_bytes(t.n, t.k)) {
    return "weight tiles: code or scale bytes do not match the shape";
  }
  const int64_t blocks = blocks_per_row(t.k);
  const int64_t tile_columns = weight_tile_columns(t.k);
  const int64_t groups = weight_tile_scale_groups(t.k);
  std::vector<uint8_t> tiled(weight_tile_rows(t.n) * tile_columns * kCodesPerTile);
  if (bits == 4) {
    std::vector<uint8_t> packed = t.codes;
    map_words(packed, store_nibbles);
    unpack_codes(packed, bits, 0, tiled);
  } else {
    unpack_codes(t.codes, bits, 0, tiled);
  }
  std::vector<uint8_t> stored(t.n * blocks * 32, 0);
  scales->assign(t.n * blocks, 0);
  for (int64_t row = 0; row < t.n; ++row) {
    for (int64_t col = 0; col < t.k; ++col) {
      stored[row * blocks * 32 + col] = tiled[tiled_position(row, col, tile_columns)];
    }
    for (int64_t block = 0; block < blocks; ++block) {
      (*scales)[row * blocks + block] = t.scales[scale_position(row, block, groups)];
    }
  }
  codes->assign(packed_bytes(t.n * blocks * 32, bits), 0);
  pack_codes(stored, bits, 0, *codes);
  return {};
}

}  // namespace mx
