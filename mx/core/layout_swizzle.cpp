#include "mx/core/layout_swizzle.h"

#include <utility>

#include "mx/core/block_grid.h"

namespace mx {

namespace {

constexpr int64_t kTileRows = 128;
constexpr int64_t kTileCols = 4;
constexpr int64_t kTileBytes = kTileRows * kTileCols;

int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

std::string check_dims(int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) return "negative scale matrix dimension";
  return "";
}

}  // namespace

int64_t swizzled_scale_bytes(int64_t rows, int64_t cols) {
  return round_up(rows, kTileRows) * round_up(cols, kTileCols);
}

int64_t swizzled_scale_offset(int64_t row, int64_t col, int64_t cols) {
  const int64_t tiles_across = round_up(cols, kTileCols) / kTileCols;
  const int64_t tile = (row / kTileRows) * tiles_across + col / kTileCols;
  const int64_t r = row % kTileRows;
  const int64_t c = col % kTileCols;
  return tile * kTileBytes + (r % 32) * 16 + (r / 32) * 4 + c;
}

std::vector<uint8_t> swizzle_scales(std::span<const uint8_t> scales, int64_t rows, int64_t cols,
                                    std::string* error) {
  *error = check_dims(rows, cols);
  if (!error->empty()) return {};
  if (int64_t(scales.size()) != rows * cols) {
    *error = "scale count " + std::to_string(scales.size()) + " is not " + std::to_string(rows) +
             " x " + std::to_string(cols);
    return {};
  }
  std::vector<uint8_t> out(swizzled_scale_bytes(rows, cols), 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      out[swizzled_scale_offset(r, c, cols)] = scales[r * cols + c];
    }
  }
  return out;
}

std::vector<uint8_t> unswizzle_scales(std::span<const uint8_t> bytes, int64_t rows, int64_t cols,
                                      std::string* error) {
  *error = check_dims(rows, cols);
  if (!error->empty()) return {};
  const int64_t want = swizzled_scale_bytes(rows, cols);
  if (int64_t(bytes.size()) != want) {
    *error = "swizzled scales of a " + std::to_string(rows) + " x " + std::to_string(cols) +
             " matrix take " + std::to_string(want) + " bytes, got " + std::to_string(bytes.size());
    return {};
  }
  std::vector<uint8_t> out(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = bytes[swizzled_scale_offset(r, c, cols)];
  }
  return out;
}

std::string scale_matrix_dims(const MxTensor& t, int64_t* rows, int64_t* cols) {
  const QuantSpec& s = t.spec;
  const int ndim = static_cast<int>(t.shape.size());
  // cuBLAS has no per-block offsets, so an asymmetric tensor cannot be handed over this way.
  if (s.asymmetric) return "swizzled scales are for symmetric tensors, not asymmetric ones";
  if (s.is_tiled()) return "swizzled scales need 1-D blocks along the last axis, not 2-D tiles";
  if (ndim == 0) return "swizzled scales need a tensor of at least 1 dimension";
  if (s.axis != -1 && s.axis != ndim - 1) {
    return "swizzled scales need blocks along the last axis, got axis " + std::to_string(s.axis);
  }
  std::string error;
  const BlockGrid grid = make_block_grid(t.shape, s, &error);
  if (!error.empty()) return error;
  // Blocks along the last axis: the grid is [outer rows, K] with one column, and its blocks are
  // numbered row by row, so t.scales is already the row-major [outer, blocks per row] matrix.
  *rows = grid.outer;
  *cols = grid.tiles_down;
  return "";
}

std::vector<uint8_t> swizzle_tensor_scales(const MxTensor& t, std::string* error) {
  int64_t rows = 0, cols = 0;
  *error = scale_matrix_dims(t, &rows, &cols);
  if (!error->empty()) return {};
  return swizzle_scales(t.scales, rows, cols, error);
}

std::string unswizzle_tensor_scales(std::span<const uint8_t> bytes, MxTensor* t) {
  int64_t rows = 0, cols = 0;
  std::string error = scale_matrix_dims(*t, &rows, &cols);
  if (!error.empty()) return error;
  std::vector<uint8_t> scales = unswizzle_scales(bytes, rows, cols, &error);
  if (!error.empty()) return error;
  t->scales = std::move(scales);
  return "";
}

}  // namespace mx
