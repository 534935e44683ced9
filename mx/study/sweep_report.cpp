#include "mx/study/sweep_report.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

#include "mx/io/atomic_file.h"
#include "mx/io/output_folder.h"
#include "mx/study/gnuplot.h"

namespace mx::study {
namespace {

bool is_reference_cell(const SweepCell& c) {
  return c.organisation == Organisation::kRow && c.rounding == Rounding::kNearestEven &&
         c.count > 0;
}

LinePlot error_vs_bits(const std::vector<SweepCell>& cells) {
  // Per format and block size, the best scale rule.
  std::map<std::string, std::map<double, double>> best;
  for (const SweepCell& c : cells) {
    if (!is_reference_cell(c)) continue;
    double& slot = best[c.format.label].try_emplace(c.bits_per_element, -INFINITY).first->second;
    slot = std::max(slot, c.sqnr_db);
  }
  LinePlot plot{"MX design space: best SQNR per format (row blocks 8..64, nearest-even)",
                "bits per element (incl. scale)",
                "SQNR (dB)",
                {}};
  for (const auto& [label, points] : best) {
    Series s{label, {}, {}};
    for (const auto& [bits, sqnr] : points) {
      s.x.push_back(bits);
      s.y.push_back(sqnr);
    }
    plot.series.push_back(std::move(s));
  }
  return plot;
}

Heatmap format_by_scale_rule(const std::vector<SweepCell>& cells) {
  Heatmap map{"SQNR (dB), 1x32 row blocks, nearest-even", {}, {}, {}, "SQNR (dB)"};
  std::map<std::string, std::map<std::string, double>> grid;
  std::vector<std::string> rules;
  for (const SweepCell& c : cells) {
    if (!is_reference_cell(c) || c.block_size != 32) continue;
    const std::string rule(scale_rule_name(c.scale_rule));
    if (std::find(rules.begin(), rules.end(), rule) == rules.end()) rules.push_back(rule);
    if (!grid.contains(c.format.label)) map.row_labels.push_back(c.format.label);
    grid[c.format.label][rule] = c.sqnr_db;
  }
  map.col_labels = rules;
  for (const std::string& row : map.row_labels) {
    std::vector<double> values;
    for (const std::string& rule : rules) values.push_back(grid[row][rule]);
    map.values.push_back(values);
  }
  return map;
}

}  // namespace

std::string write_sweep_report(const std::vector<SweepCell>& cells, const std::string& out_dir) {
  io::OutputFolder dir;
  if (std::string e = dir.open(out_dir); !e.empty()) return e;
  if (std::string e = io::write_text_atomically(dir.file("sweep.csv"), sweep_csv(cells));
      !e.empty()) {
    return dir.named(e);
  }
  if (std::string e = io::write_text_atomically(dir.file("sweep.json"), sweep_json(cells));
      !e.empty()) {
    return dir.named(e);
  }
  if (std::string e = draw_line_plot(error_vs_bits(cells), dir.file("error_vs_bits.png"));
      !e.empty()) {
    return dir.named(e);
  }
  if (std::string e =
          draw_heatmap(format_by_scale_rule(cells), dir.file("format_scale_heatmap.png"));
      !e.empty()) {
    return dir.named(e);
  }
  return dir.commit();
}

std::string sweep_summary(const std::vector<SweepCell>& cells) {
  std::string out =
      fmt::format("{:>9}  {:<10} {:<6} {:<13} {:>5} {:<7} {:>9} {:>10} {:>9}\n", "bits/elem",
                  "format", "scale", "rounding", "block", "blocks", "SQNR dB", "RMSE", "clamped");
  for (const SweepCell& c : best_per_bit_budget(cells)) {
    out += fmt::format("{:>9.3f}  {:<10} {:<6} {:<13} {:>5} {:<7} {:>9.2f} {:>10.3e} {:>8.3f}%\n",
                       c.bits_per_element, c.format.label, scale_rule_name(c.scale_rule),
                       rounding_name(c.rounding), c.block_size, organisation_name(c.organisation),
                       c.sqnr_db, c.rmse, 100 * c.clamped);
  }
  return out;
}

}  // namespace mx::study
