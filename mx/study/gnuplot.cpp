#include "mx/study/gnuplot.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mx::study {
namespace {

namespace fs = std::filesystem;

// gnuplot reads strings in single quotes; a quote inside one is doubled.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

std::string run_gnuplot(const std::string& script, const std::vector<std::string>& data_files,
                        const std::vector<std::string>& data, const std::string& png_path) {
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / ("mxkit-plot-" + std::to_string(getpid()));
  fs::create_directories(dir, ec);
  if (ec) return "cannot create a temporary folder for the plot: " + ec.message();
  for (size_t i = 0; i < data_files.size(); ++i) {
    std::ofstream(dir / data_files[i]) << data[i];
  }
  const fs::path tmp_png = fs::path(png_path).string() + ".tmp" + std::to_string(getpid());
  std::ofstream(dir / "plot.gp") << "set terminal pngcairo size 1000,650 noenhanced\n"
                                 << "set output " << quoted(tmp_png.string()) << "\n"
                                 << "cd " << quoted(dir.string()) << "\n"
                                 << script;
  const std::string command = "gnuplot " + quoted((dir / "plot.gp").string()) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return "cannot run gnuplot";
  std::string output;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  fs::remove_all(dir, ec);
  if (status != 0) {
    fs::remove(tmp_png, ec);
    if (status == 127 * 256 || output.find("not found") != std::string::npos) {
      return "gnuplot not found (install Debian's gnuplot-nox)";
    }
    std::string first_line = output.substr(0, output.find('\n'));
    return "gnuplot failed: " + first_line;
  }
  fs::rename(tmp_png, png_path, ec);
  if (ec) return "cannot write " + png_path + ": " + ec.message();
  return "";
}

}  // namespace

std::string draw_line_plot(const LinePlot& plot, const std::string& png_path) {
  std::vector<std::string> files, data;
  std::ostringstream script;
  script << "set title " << quoted(plot.title) << "\nset xlabel " << quoted(plot.x_label)
         << "\nset ylabel " << quoted(plot.y_label) << "\nset key outside right\nset grid\nplot ";
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const Series& s = plot.series[i];
    std::ostringstream rows;
    for (size_t j = 0; j < s.x.size(); ++j) {
      if (std::isfinite(s.y[j])) rows << s.x[j] << ' ' << s.y[j] << '\n';
    }
    files.push_back("series" + std::to_string(i) + ".dat");
    data.push_back(rows.str());
    script << (i ? ", " : "") << quoted(files.back()) << " using 1:2 with "
           << (s.points ? "linespoints" : "lines") << " title " << quoted(s.title);
  }
  script << "\n";
  return run_gnuplot(script.str(), files, data, png_path);
}

std::string draw_heatmap(const Heatmap& map, const std::string& png_path) {
  std::ostringstream rows;
  for (size_t r = 0; r < map.values.size(); ++r) {
    for (size_t c = 0; c < map.values[r].size(); ++c) {
      rows << c << ' ' << r << ' ' << map.values[r][c] << '\n';
    }
    rows << '\n';
  }
  std::ostringstream script;
  script << "set title " << quoted(map.title) << "\nset cblabel " << quoted(map.value_label)
         << "\nset view map\nset palette rgb 33,13,10\nunset key\n";
  script << "set xtics (";
  for (size_t c = 0; c < map.col_labels.size(); ++c) {
    script << (c ? ", " : "") << quoted(map.col_labels[c]) << ' ' << c;
  }
  script << ")\nset ytics (";
  for (size_t r = 0; r < map.row_labels.size(); ++r) {
    script << (r ? ", " : "") << quoted(map.row_labels[r]) << ' ' << r;
  }
  script << ")\nset xrange [-0.5:" << map.col_labels.size() - 0.5
         << "]\nset yrange [-0.5:" << map.row_labels.size() - 0.5 << "]\n";
  script << "plot 'heat.dat' using 1:2:3 with image, "
            "'heat.dat' using 1:2:(sprintf('%.1f', $3)) with labels\n";
  return run_gnuplot(script.str(), {"heat.dat"}, {rows.str()}, png_path);
}

}  // namespace mx::study
