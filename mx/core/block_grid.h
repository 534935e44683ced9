// How a tensor is cut into blocks. Every organisation (1-D blocks along any axis, 2-D tiles)
// is a grid of R x C tiles over a 3-D view [outer, rows, cols] of the row-major tensor:
//   1-D blocks of k along axis a: outer = prod(shape[:a]), rows = shape[a],
//                                 cols = prod(shape[a+1:]), tile k x 1;
//   tiles R x C:                  outer = prod(shape[:-2]), rows = shape[-2],
//                                 cols = shape[-1], tile R x C.
// Blocks are numbered row-major over (outer, tile row, tile column); slots inside a block are
// row-major over the tile. Slots past the tensor's edge are padding: they read as zero.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/quant_spec.h"

namespace mx {

struct BlockGrid {
  int64_t outer = 1, rows = 1, cols = 1;
  int tile_rows = 1, tile_cols = 1;
  int64_t tiles_down = 1, tiles_across = 1;
  std::vector<int64_t> scale_shape;  // shape of the scale tensor, one entry per block

  int64_t num_blocks() const { return outer * tiles_down * tiles_across; }
  int block_elems() const { return tile_rows * tile_cols; }
  // True when each block is a contiguous run of the input (blocks along the last axis).
  bool blocks_are_contiguous_runs() const {
    return tile_rows == 1 || (cols == 1 && tile_cols == 1);
  }

  // Flat row-major index of slot `slot` of block `block`, or -1 for a padding slot.
  int64_t flat_index(int64_t block, int slot) const {
    const int64_t per_outer = tiles_down * tiles_across;
    const int64_t o = block / per_outer;
    const int64_t t = block % per_outer;
    const int64_t row = (t / tiles_across) * tile_rows + slot / tile_cols;
    const int64_t col = (t % tiles_across) * tile_cols + slot % tile_cols;
    if (row >= rows || col >= cols) return -1;
    return (o * rows + row) * cols + col;
  }

  // The inverse of flat_index: the block and slot holding flat row-major index `flat`.
  void locate(int64_t flat, int64_t* block, int* slot) const {
    const int64_t o = flat / (rows * cols);
    const int64_t row = flat / cols % rows;
    const int64_t col = flat % cols;
    *block = (o * tiles_down + row / tile_rows) * tiles_across + col / tile_cols;
    *slot = int(row % tile_rows) * tile_cols + int(col % tile_cols);
  }

  // flat_index for every slot of one block (-1 for padding), without a division per slot.
  void block_indices(int64_t block, int64_t* out) const {
    const int64_t per_outer = tiles_down * tiles_across;
    const int64_t o = block / per_outer;
    const int64_t t = block % per_outer;
    const int64_t row0 = (t / tiles_across) * tile_rows;
    const int64_t col0 = (t % tiles_across) * tile_cols;
    for (int r = 0; r < tile_rows; ++r) {
      const int64_t row = row0 + r;
      const int64_t base = (o * rows + row) * cols + col0;
      for (int c = 0; c < tile_cols; ++c) {
        *out++ = (row < rows && col0 + c < cols) ? base + c : -1;
      }
    }
  }
};

// Builds the grid, or returns a one-line reason in `error` (bad axis, tile larger than the
// array, fewer than two axes for a tile, spec invalid, overflowing sizes, or blocks so much
// larger than the array that the stored padding would exceed 64 slots per element).
BlockGrid make_block_grid(std::span<const int64_t> shape, const QuantSpec& spec,
                          std::string* error);

int64_t element_count(std::span<const int64_t> shape);
// False when a dimension is negative or the nonzero dimensions' product overflows int64.
bool element_count_fits(std::span<const int64_t> shape);

}  // namespace mx
