// One PNG of the loss curves of several training runs (their log.csv): the training loss,
// smoothed by a centred 11-step mean, as a line per run, and the validation passes as points,
// drawn by gnuplot (mx/study/gnuplot.h).
#pragma once

#include <string>
#include <vector>

namespace mx::train {

struct RunCurve {
  std::string label;    // legend title
  std::string run_dir;  // holds log.csv
};

// A run folder's name, as legends and tables show it ("runs/x/" and "runs/x" are both "x").
std::string run_label(const std::string& run_dir);

std::string plot_loss_curves(const std::vector<RunCurve>& runs, const std::string& png_path,
                             const std::string& title = "Training loss");

}  // namespace mx::train
