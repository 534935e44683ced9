// The design-space sweep (Yang et al.'s study, on real tensors): every combination of element
// format, scale rule, rounding, block size and block organisation, measured on a set of
// tensors. Metrics per cell: RMSE, SQNR, max absolute error, the fraction of elements clamped
// (|v| above the block's largest representable magnitude) and the fraction flushed to zero.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mx/core/quant_spec.h"

namespace mx::study {

struct SweepTensor {
  std::string name;
  int64_t rows = 0, cols = 0;  // viewed as a matrix: leading axes flattened into rows
  std::vector<float> values;
};

enum class Organisation { kRow, kColumn, kTile };
std::string_view organisation_name(Organisation o);

struct SweepFormat {
  ElementFormat format;
  bool asymmetric;
  std::string label;  // "e2m1", "int4-asym"
};

struct SweepGrid {
  std::vector<SweepFormat> formats;
  std::vector<ScaleRule> scale_rules;
  std::vector<Rounding> roundings;
  std::vector<int> block_sizes;
  std::vector<Organisation> organisations;
  uint64_t seed = 0;
};

// The grid of the study: E2M1, E3M0, INT4 (symmetric and asymmetric), E2M3, E3M2, E4M3, E5M2,
// INT8 x floor, ceil, even, rceil x nearest-even, stochastic x blocks 8, 16, 32, 64 x row,
// column, tile. A tile of b elements is the most square R x C with R * C = b, R <= C.
SweepGrid default_sweep_grid();

struct SweepCell {
  SweepFormat format;
  ScaleRule scale_rule;
  Rounding rounding;
  int block_size;
  Organisation organisation;
  double bits_per_element = 0;
  int64_t count = 0;
  double rmse = 0, sqnr_db = 0, max_abs = 0;
  double clamped = 0, flushed = 0;  // fractions of count
};

QuantSpec spec_for(const SweepCell& cell);

// Runs every cell of `grid` over every tensor (tensors with a single row are used only by the
// row organisation). `progress(done, total)` is called after each cell.
std::vector<SweepCell> run_sweep(const std::vector<SweepTensor>& tensors, const SweepGrid& grid,
                                 int threads,
                                 const std::function<void(int64_t, int64_t)>& progress = {});

// The best cell (highest SQNR) for each distinct bits-per-element value.
std::vector<SweepCell> best_per_bit_budget(const std::vector<SweepCell>& cells);

std::string sweep_csv(const std::vector<SweepCell>& cells);
std::string sweep_json(const std::vector<SweepCell>& cells);

}  // namespace mx::study
