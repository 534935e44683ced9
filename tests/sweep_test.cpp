// The design-space sweep: its grid, and metrics that agree with a direct computation.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "mx/core/quantize_ref.h"
#include "mx/study/sweep.h"
#include "mx/study/sweep_report.h"

namespace mx::study {
namespace {

SweepTensor gaussian_tensor(int64_t rows, int64_t cols, uint32_t seed) {
  SweepTensor t{"w", rows, cols, std::vector<float>(rows * cols)};
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (float& x : t.values) x = d(rng);
  return t;
}

SweepGrid one_cell_grid(ElementFormat f, ScaleRule rule, Organisation org) {
  SweepGrid g;
  g.formats = {{f, false, std::string(traits(f).name)}};
  g.scale_rules = {rule};
  g.roundings = {Rounding::kNearestEven};
  g.block_sizes = {32};
  g.organisations = {org};
  return g;
}

TEST(Sweep, DefaultGridCoversTheStudy) {
  const SweepGrid g = default_sweep_grid();
  EXPECT_EQ(g.formats.size() * g.scale_rules.size() * g.roundings.size() * g.block_sizes.size() *
                g.organisations.size(),
            9u * 4 * 2 * 4 * 3);
}

TEST(Sweep, TilesHaveTheBlockSizeAndAreAsSquareAsPossible) {
  SweepCell cell{{ElementFormat::kE2M1, false, "e2m1"},
                 ScaleRule::kFloor,
                 Rounding::kNearestEven,
                 32,
                 Organisation::kTile};
  QuantSpec s = spec_for(cell);
  EXPECT_EQ(s.tile_rows * s.tile_cols, 32);
  EXPECT_EQ(s.tile_rows, 4);
  cell.block_size = 64;
  s = spec_for(cell);
  EXPECT_EQ(s.tile_rows, 8);
}

TEST(Sweep, MetricsMatchADirectComputation) {
  const SweepTensor t = gaussian_tensor(64, 96, 1);
  for (Organisation org : {Organisation::kRow, Organisation::kColumn, Organisation::kTile}) {
    const auto cells =
        run_sweep({t}, one_cell_grid(ElementFormat::kE2M1, ScaleRule::kFloor, org), 1);
    ASSERT_EQ(cells.size(), 1u);
    std::string error;
    const MxTensor q =
        quantize_ref(t.values, std::vector<int64_t>{64, 96}, spec_for(cells[0]), &error);
    const std::vector<float> d = dequantize_ref(q);
    double signal = 0, noise = 0, max_abs = 0;
    int64_t flushed = 0;
    for (size_t i = 0; i < d.size(); ++i) {
      const double e = double(t.values[i]) - d[i];
      signal += double(t.values[i]) * t.values[i];
      noise += e * e;
      max_abs = std::max(max_abs, std::fabs(e));
      flushed += d[i] == 0 && t.values[i] != 0;
    }
    EXPECT_EQ(cells[0].count, 64 * 96);
    EXPECT_NEAR(cells[0].rmse, std::sqrt(noise / d.size()), 1e-12);
    EXPECT_NEAR(cells[0].sqnr_db, 10 * std::log10(signal / noise), 1e-9);
    EXPECT_EQ(cells[0].max_abs, max_abs);
    EXPECT_NEAR(cells[0].flushed, double(flushed) / d.size(), 1e-15);
    EXPECT_EQ(cells[0].bits_per_element, 4.25);
  }
}

TEST(Sweep, FloorClampsTheTopOfBlocksAndRceilNever) {
  // Every block's maximum is 7 * 2^j: E2M1 with FLOOR gets scale 2^j and clamps 7 to 6.
  SweepTensor t{"clip", 4, 32, std::vector<float>(128, 0.5f)};
  for (int r = 0; r < 4; ++r) t.values[r * 32] = std::ldexp(7.0f, r);
  const auto floor_cells =
      run_sweep({t}, one_cell_grid(ElementFormat::kE2M1, ScaleRule::kFloor, Organisation::kRow), 1);
  EXPECT_DOUBLE_EQ(floor_cells[0].clamped, 4.0 / 128);
  const auto rceil_cells =
      run_sweep({t}, one_cell_grid(ElementFormat::kE2M1, ScaleRule::kRceil, Organisation::kRow), 1);
  EXPECT_EQ(rceil_cells[0].clamped, 0.0);
}

TEST(Sweep, BestPerBitBudgetKeepsTheHighestSqnr) {
  const SweepTensor t = gaussian_tensor(32, 64, 2);
  SweepGrid g = one_cell_grid(ElementFormat::kE2M1, ScaleRule::kFloor, Organisation::kRow);
  g.scale_rules = {ScaleRule::kFloor, ScaleRule::kEven};
  const auto cells = run_sweep({t}, g, 1);
  const auto best = best_per_bit_budget(cells);
  ASSERT_EQ(best.size(), 1u);
  EXPECT_EQ(best[0].sqnr_db, std::max(cells[0].sqnr_db, cells[1].sqnr_db));
}

}  // namespace
}  // namespace mx::study

namespace mx::study {
namespace {

TEST(SweepReport, WritesCsvJsonAndTwoPngPlots) {
  SweepGrid g = default_sweep_grid();
  g.roundings = {Rounding::kNearestEven};
  g.organisations = {Organisation::kRow};
  g.block_sizes = {16, 32};
  const auto cells = run_sweep({gaussian_tensor(32, 64, 3)}, g, 1);
  const std::string dir = ::testing::TempDir() + "/sweep_report";
  ASSERT_EQ(write_sweep_report(cells, dir), "");
  for (const char* png : {"error_vs_bits.png", "format_scale_heatmap.png"}) {
    std::ifstream f(dir + "/" + png, std::ios::binary);
    char magic[8] = {};
    f.read(magic, 8);
    EXPECT_EQ(std::string(magic + 1, 3), "PNG") << png;
  }
  std::ifstream csv(dir + "/sweep.csv");
  int lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  EXPECT_EQ(lines, int(cells.size()) + 1);
  EXPECT_NE(sweep_summary(cells).find("int8"), std::string::npos);
}

}  // namespace
}  // namespace mx::study
