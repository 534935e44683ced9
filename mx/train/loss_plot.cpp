#include "mx/train/loss_plot.h"

#include <algorithm>
#include <filesystem>

#include "mx/io/cat.h"
#include "mx/train/run_log.h"

namespace mx::train {

std::string run_label(const std::string& run_dir) {
  const std::filesystem::path p = std::filesystem::path(run_dir).lexically_normal();
  const std::string name = p.filename().string();
  return name.empty() ? p.parent_path().filename().string() : name;
}

std::string loss_curves(const std::vector<RunCurve>& runs, const LossPlotOptions& options,
                        study::LinePlot* out) {
  if (runs.empty()) return "no run to plot";
  study::LinePlot plot;
  plot.title = options.title;
  plot.x_label = "step";
  plot.y_label = "loss (nats per token)";
  for (const RunCurve& run : runs) {
    std::vector<LogRow> rows;
    const std::string log = (std::filesystem::path(run.run_dir) / kLogFile).string();
    if (std::string e = read_log(log, &rows); !e.empty()) return e;
    if (rows.empty()) return io::cat(log, ": no step logged yet");
    if (rows.back().step < options.from_step) {
      return io::cat(log, ": no step at or after ", options.from_step);
    }
    study::Series train{io::cat(run.label, " train"), {}, {}, false};
    study::Series val{
        options.validation_only ? run.label : io::cat(run.label, " val"), {}, {}, true};
    // A centred mean over 11 steps shows the trend through the batch-to-batch noise without
    // the lag a running average would add; it averages over steps before from_step too.
    constexpr size_t kHalf = 5;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].step < options.from_step) continue;
      const size_t lo = i >= kHalf ? i - kHalf : 0, hi = std::min(rows.size(), i + kHalf + 1);
      double sum = 0;
      for (size_t j = lo; j < hi; ++j) sum += rows[j].train_loss;
      train.x.push_back(double(rows[i].step));
      train.y.push_back(sum / double(hi - lo));
      if (rows[i].val_loss) {
        val.x.push_back(double(rows[i].step));
        val.y.push_back(*rows[i].val_loss);
      }
    }
    if (options.validation_only && val.x.empty()) {
      return io::cat(log, ": no validation pass at or after step ", options.from_step);
    }
    if (!options.validation_only) plot.series.push_back(std::move(train));
    if (!val.x.empty()) plot.series.push_back(std::move(val));
  }
  *out = std::move(plot);
  return "";
}

std::string plot_loss_curves(const std::vector<RunCurve>& runs, const std::string& png_path,
                             const LossPlotOptions& options) {
  study::LinePlot plot;
  if (std::string e = loss_curves(runs, options, &plot); !e.empty()) return e;
  return study::draw_line_plot(plot, png_path);
}

}  // namespace mx::train
