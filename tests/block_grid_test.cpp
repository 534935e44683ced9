// How tensors are cut into blocks, and the shapes and specs that are refused.
#include <gtest/gtest.h>

#include "mx/core/block_grid.h"
#include "mx/core/mx_tensor.h"

namespace mx {
namespace {

BlockGrid grid_of(std::vector<int64_t> shape, QuantSpec spec, std::string* error) {
  return make_block_grid(shape, spec, error);
}

TEST(BlockGrid, ColumnBlocksVisitAColumnDownTheRows) {
  QuantSpec spec;
  spec.axis = 0;
  spec.block_size = 4;
  std::string error;
  const BlockGrid g = grid_of({6, 3}, spec, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(g.scale_shape, (std::vector<int64_t>{2, 3}));
  // Block 4 is the second block of column 1: rows 4, 5 and then two padding slots.
  std::vector<int64_t> idx(4);
  g.block_indices(4, idx.data());
  EXPECT_EQ(idx, (std::vector<int64_t>{13, 16, -1, -1}));
  for (int s = 0; s < 4; ++s) EXPECT_EQ(g.flat_index(4, s), idx[s]);
}

TEST(BlockGrid, TilesCoverTheLastTwoAxesRowMajor) {
  QuantSpec spec;
  spec.tile_rows = 2;
  spec.tile_cols = 2;
  std::string error;
  const BlockGrid g = grid_of({2, 3, 3}, spec, &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(g.scale_shape, (std::vector<int64_t>{2, 2, 2}));
  std::vector<int64_t> idx(4);
  g.block_indices(5, idx.data());  // second slice, tile (0, 1): columns 2 and padding
  EXPECT_EQ(idx, (std::vector<int64_t>{11, -1, 14, -1}));
}

TEST(BlockGrid, RefusesShapesAndSpecsThatCannotWork) {
  std::string error;
  QuantSpec spec;
  grid_of({int64_t{1} << 40, int64_t{1} << 40, 0}, spec, &error);
  EXPECT_NE(error.find("overflows"), std::string::npos) << error;
  spec.axis = 2;
  grid_of({4, 4}, spec, &error);
  EXPECT_NE(error.find("axis 2 out of range"), std::string::npos) << error;
  spec = {};
  spec.block_size = 0;
  grid_of({4}, spec, &error);
  EXPECT_NE(error.find("block size"), std::string::npos) << error;
  spec = {};
  spec.tile_rows = spec.tile_cols = 4;
  grid_of({64}, spec, &error);
  EXPECT_NE(error.find("at least 2 dimensions"), std::string::npos) << error;
  grid_of({3, 64}, spec, &error);
  EXPECT_NE(error.find("does not fit"), std::string::npos) << error;
}

TEST(BlockGrid, RefusesBlocksThatWouldBeAlmostAllPadding) {
  // One real value per 2^20-slot block: storing the padding would take 1e11 bytes.
  QuantSpec spec;
  spec.block_size = 1 << 20;
  std::string error;
  grid_of({100000, 1}, spec, &error);
  EXPECT_NE(error.find("mostly padding"), std::string::npos) << error;
  MxTensor t = make_mx_tensor(std::vector<int64_t>{100000, 1}, spec, &error);
  EXPECT_NE(error, "");
  // A short tail block is ordinary padding and is accepted.
  spec.block_size = 32;
  grid_of({5, 3}, spec, &error);
  EXPECT_EQ(error, "");
}

}  // namespace
}  // namespace mx
