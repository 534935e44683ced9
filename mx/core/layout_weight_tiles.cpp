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

}  // namespace

int64_t weight_tile_rows(int64_t n) {
  return (n + kTileRows - 1) / kTileRows;
}
int64_t weight_tile_columns(int64_t k) {
  return (k + kTileCols - 1) / kTileCols;
}

int64_t weight_tile_code_bytes(ElementFormat format, int64_t n, int64_t k) {
  return weight_tile_rows(n) * weight_tile_columns(k) * kCodesPerTile * traits(format).bits / 8;
}

int64_t weight_tile_scale_bytes(int64_t n, int64_t k) {
  return weight_tile_rows(n) * weight_tile_columns(k) * 32;
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
  std::vector<uint8_t> stored(n * blocks * 32);
  unpack_codes(codes, bits, 0, stored);
  std::vector<uint8_t> tiled(weight_tile_rows(n) * tile_columns * kCodesPerTile, 0);
  t.scales.assign(weight_tile_scale_bytes(n, k), 0);
  for (int64_t row = 0; row < n; ++row) {
    for (int64_t col = 0; col < k; ++col) {
      tiled[tiled_position(row, col, tile_columns)] = stored[row * blocks * 32 + col];
    }
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t tile = (row / kTileRows) * tile_columns + block / 2;
      t.scales[tile * 32 + 2 * (row % kTileRows) + block % 2] = scales[row * blocks + block];
    }
  }
  t.codes.assign(weight_tile_code_bytes(format, n, k), 0);
  pack_codes(tiled, bits, 0, t.codes);
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
  std::vector<uint8_t> tiled(weight_tile_rows(t.n) * tile_columns * kCodesPerTile);
  unpack_codes(t.codes, bits, 0, tiled);
  std::vector<uint8_t> stored(t.n * blocks * 32, 0);
  scales->assign(t.n * blocks, 0);
  for (int64_t row = 0; row < t.n; ++row) {
    for (int64_t col = 0; col < t.k; ++col) {
      stored[row * blocks * 32 + col] = tiled[tiled_position(row, col, tile_columns)];
    }
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t tile = (row / kTileRows) * tile_columns + block / 2;
      (*scales)[row * blocks + block] = t.scales[tile * 32 + 2 * (row % kTileRows) + block % 2];
    }
  }
  codes->assign(packed_bytes(t.n * blocks * 32, bits), 0);
  pack_codes(stored, bits, 0, *codes);
  return {};
}

}  // namespace mx
