#include "mx/core/block_grid.h"

namespace mx {

int64_t element_count(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool element_count_fits(std::span<const int64_t> shape) {
  // Nonzero dimensions must multiply within int64 even when another dimension is zero.
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && __builtin_mul_overflow(n, d, &n))) return false;
  }
  return true;
}

namespace {
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}
}  // namespace

namespace {
BlockGrid make_block_grid_unchecked(std::span<const int64_t> shape, const QuantSpec& spec,
                                    std::string* error);
}  // namespace

// Blocks much larger than the array they cover are mostly padding, and padding is stored; a
// grid whose padded slots would exceed 64 per element (plus one block's worth) is refused
// rather than allowed to ask for far more memory than the array holds.
BlockGrid make_block_grid(std::span<const int64_t> shape, const QuantSpec& spec,
                          std::string* error) {
  BlockGrid g = make_block_grid_unchecked(shape, spec, error);
  if (!error->empty()) return g;
  int64_t slots = 0;
  if (__builtin_mul_overflow(g.num_blocks(), int64_t{g.block_elems()}, &slots) ||
      slots > 64 * element_count(shape) + g.block_elems()) {
    *error = "blocks of " + std::to_string(g.block_elems()) +
             " elements are mostly padding for this array; use a smaller block or tile";
  }
  return g;
}

namespace {
BlockGrid make_block_grid_unchecked(std::span<const int64_t> shape, const QuantSpec& spec,
                                    std::string* error) {
  BlockGrid g;
  error->clear();
  if (std::string reason = validate(spec); !reason.empty()) {
    *error = reason;
    return g;
  }
  for (int64_t d : shape) {
    if (d < 0) {
      *error = "negative dimension in shape";
      return g;
    }
  }
  if (!element_count_fits(shape)) {
    *error = "array too large: its element count overflows 64 bits";
    return g;
  }
  const int ndim = static_cast<int>(shape.size());
  if (spec.is_tiled()) {
    if (ndim < 2) {
      *error = "a " + std::to_string(spec.tile_rows) + "x" + std::to_string(spec.tile_cols) +
               " tile needs an array of at least 2 dimensions";
      return g;
    }
    g.rows = shape[ndim - 2];
    g.cols = shape[ndim - 1];
    if (spec.tile_rows > g.rows || spec.tile_cols > g.cols) {
      *error = "tile " + std::to_string(spec.tile_rows) + "x" + std::to_string(spec.tile_cols) +
               " does not fit the last two dimensions " + std::to_string(g.rows) + "x" +
               std::to_string(g.cols);
      return g;
    }
    g.outer = element_count(shape.first(ndim - 2));
    g.tile_rows = spec.tile_rows;
    g.tile_cols = spec.tile_cols;
    g.scale_shape.assign(shape.begin(), shape.end() - 2);
    g.tiles_down = ceil_div(g.rows, g.tile_rows);
    g.tiles_across = ceil_div(g.cols, g.tile_cols);
    g.scale_shape.push_back(g.tiles_down);
    g.scale_shape.push_back(g.tiles_across);
    return g;
  }
  // A 0-d tensor is treated as one element along a single axis.
  const std::vector<int64_t> shape_1d =
      ndim == 0 ? std::vector<int64_t>{1} : std::vector<int64_t>(shape.begin(), shape.end());
  const int n = static_cast<int>(shape_1d.size());
  const int axis = spec.axis < 0 ? spec.axis + n : spec.axis;
  if (axis < 0 || axis >= n) {
    *error = "axis " + std::to_string(spec.axis) + " out of range for an array of " +
             std::to_string(n) + " dimensions";
    return g;
  }
  g.outer = element_count(std::span(shape_1d).first(axis));
  g.rows = shape_1d[axis];
  g.cols = element_count(std::span(shape_1d).subspan(axis + 1));
  g.tile_rows = spec.block_size;
  g.tile_cols = 1;
  g.tiles_down = ceil_div(g.rows, g.tile_rows);
  g.tiles_across = g.cols;
  g.scale_shape = shape_1d;
  g.scale_shape[axis] = g.tiles_down;
  return g;
}
}  // namespace

}  // namespace mx
