// Drawing PNG plots with gnuplot (Debian's gnuplot-nox). The study layer writes the data and a
// script to a temporary folder and runs gnuplot; the PNG is written under a temporary name and
// renamed, so a failed plot never leaves a half-written file.
#pragma once

#include <string>
#include <vector>

namespace mx::study {

struct Series {
  std::string title;
  std::vector<double> x, y;
  bool points = true;  // mark each point; false: a plain line (for long series)
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
};

struct Heatmap {
  std::string title;
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<double>> values;  // [row][col]
  std::string value_label;
};

// Each returns "" on success, else a one-line reason (e.g. gnuplot missing).
std::string draw_line_plot(const LinePlot& plot, const std::string& png_path);
std::string draw_heatmap(const Heatmap& map, const std::string& png_path);

}  // namespace mx::study
