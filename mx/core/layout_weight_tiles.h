// The weight-tile layout that the GPU weight-only product reads (mx/kernels/cuda/mx_gemm.h): an
// MX matrix W [N, K] with blocks of 32 along K, regrouped so that each lane of a warp loads, in
// one contiguous piece, exactly the codes its tensor-core fragments need.
//
// N is padded to a multiple of 16 and K to a multiple of 64 (padding codes and scales are zero).
// The matrix is cut into tiles of 16 rows x 64 columns (two blocks per row), stored row of tiles
// after row of tiles: tile (tn, tk) is number tn * (padded K / 64) + tk.
//
// Codes: a tile holds 32 lanes x 4·bits bytes, lane after lane. Lane l (r = l / 4, q = l % 4)
// holds 32 codes, packed as in MX storage (little-endian bit stream), in the order of pairs
// p = 0..15 with p = 8b + 4s + 2i + h: codes of row r + 8h at columns 32b + 16s + 8i + 2q and
// one after it. These are the A fragments (rows r, r + 8; columns 2q, 2q + 1 and 8 after) of
// the four 16-column steps of an m16n8k16 product over the tile.
//
// Scales: 32 bytes per tile, same tile order; byte 2·row + b is the scale of tile row `row`'s
// block b (the tile's first or second block of 32 columns).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/format.h"

namespace mx {

struct WeightTiles {
  ElementFormat format = ElementFormat::kE2M1;
  int64_t n = 0;  // rows of W (before padding)
  int64_t k = 0;  // columns of W (before padding)
  std::vector<uint8_t> codes;
  std::vector<uint8_t> scales;
};

int64_t weight_tile_rows(int64_t n);     // n rounded up to 16, divided by 16
int64_t weight_tile_columns(int64_t k);  // k rounded up to 64, divided by 64
int64_t weight_tile_code_bytes(ElementFormat format, int64_t n, int64_t k);
int64_t weight_tile_scale_bytes(int64_t n, int64_t k);

// From MX storage (codes: n rows of ceil(k / 32) blocks of 32 codes, scales [n, ceil(k / 32)];
// see mx_tensor.h). Padding slots of the storage become zero codes. On a size mismatch, an empty
// result and a reason in `error`.
WeightTiles to_weight_tiles(ElementFormat format, int64_t n, int64_t k,
                            std::span<const uint8_t> codes, std::span<const uint8_t> scales,
                            std::string* error);

// Back to MX storage: codes and scales as to_weight_tiles takes them (padding slots zero).
std::string from_weight_tiles(const WeightTiles& tiles, std::vector<uint8_t>* codes,
                              std::vector<uint8_t>* scales);

}  // namespace mx
