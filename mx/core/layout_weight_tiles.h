// The weight-tile layout that the GPU weight-only product reads (mx/kernels/cuda/mx_gemm.h): an
// MX matrix W [N, K] with blocks of 32 along K, regrouped so that each lane of a warp loads, in
// one contiguous piece, exactly the codes its tensor-core fragments need.
//
// N is padded to a multiple of 16 and K to a multiple of 256 (padding codes and scales are
// zero). The matrix is cut into tiles of 16 rows x 64 columns (two blocks per row), stored row of
// tiles after row of tiles: tile (tn, tk) is number tn * (padded K / 64) + tk. Tiles come in
// groups of four along K, the unit in which the product reads scales.
//
// Codes: a tile holds 32 lanes x 4·bits bytes, lane after lane. Lane l (r = l / 4, q = l % 4)
// holds 32 codes as 16 pairs p = 0..15 with p = 8b + 4s + 2i + h: pair p is the codes of row
// r + 8h at columns 32b + 16s + 8i + 2q and one after it. These are the A fragments (rows r,
// r + 8; columns 2q, 2q + 1 and 8 after) of the four 16-column steps of an m16n8k16 product over
// the tile. For 8-, 6- and 2-bit codes the lane's bytes are the pairs in order, packed as in MX
// storage (little-endian bit stream). For 4-bit codes, the lane's four little-endian 32-bit
// words hold pairs 4w..4w + 3 in word w: slot j = p % 4 puts the pair's first code in the low
// 16 bits and its second code 16 bits higher, with code bits 0, 1, 2, 3 at bits
//   slot 0: 6, 7, 8, 15     slot 1: 3, 4, 5, 12     slot 2: 0, 1, 2, 9     slot 3: 10, 11, 13, 14
// of each half. Then one shift and one mask put an E2M1 pair in the bit positions of a
// bfloat16 pair (sign at 15, magnitude at 6-8) for three slots of every word.
//
// Scales: a group of four tiles of one tile row holds 128 bytes, and byte 16r + 4u + 2b + h is
// the scale of row r + 8h, block b of the group's tile u. Lane l reads its 16 bytes at
// 16 * (l / 4) with one load.
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
int64_t weight_tile_columns(int64_t k);  // k rounded up to 256, divided by 64
int64_t weight_tile_code_bytes(ElementFormat format, int64_t n, int64_t k);
int64_t weight_tile_scale_groups(int64_t k);  // k rounded up to 256, divided by 256
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
