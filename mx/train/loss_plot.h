// One PNG of the loss curves of several training runs (their log.csv): the training loss,
// smoothed by a centred 11-step mean, as a line per run, and the validation passes as points,
// drawn by gnuplot (mx/study/gnuplot.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mx/study/gnuplot.h"

namespace mx::train {

struct RunCurve {
  std::string label;    // legend title
  std::string run_dir;  // holds log.csv
};

struct LossPlotOptions {
  std::string title = "Training loss";
  // Only the validation passes, a line with points per run: readable with many runs, whose
  // training curves overlap.
  bool validation_only = false;
  // Steps before this one are left out: the first steps' loss, near ln(vocabulary), would
  // otherwise squeeze the differences that matter into the bottom of the plot.
  int64_t from_step = 0;
};

// A run folder's name, as legends and tables show it ("runs/x/" and "runs/x" are both "x").
std::string run_label(const std::string& run_dir);

// The plot's series from the runs' logs, without drawing it. A run with nothing to draw (no
// step logged, or none at or after from_step) is an error naming its log.
std::string loss_curves(const std::vector<RunCurve>& runs, const LossPlotOptions& options,
                        study::LinePlot* out);

std::string plot_loss_curves(const std::vector<RunCurve>& runs, const std::string& png_path,
                             const LossPlotOptions& options = {});

}  // namespace mx::train
