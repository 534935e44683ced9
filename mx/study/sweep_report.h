// Files and text a sweep produces: CSV, JSON, two PNG plots and the terminal summary.
#pragma once

#include <string>
#include <vector>

#include "mx/study/sweep.h"

namespace mx::study {

// Writes sweep.csv, sweep.json, error_vs_bits.png (best SQNR per format against bits per
// element, row blocks, nearest-even) and format_scale_heatmap.png (SQNR per format x scale
// rule, 1x32 row blocks, nearest-even) into `out_dir`. Returns "" or a one-line reason.
std::string write_sweep_report(const std::vector<SweepCell>& cells, const std::string& out_dir);

// The best configuration per bit budget, as aligned text lines.
std::string sweep_summary(const std::vector<SweepCell>& cells);

}  // namespace mx::study
