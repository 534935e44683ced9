#include "mx/study/gnuplot.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mx/io/atomic_file.h"

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

// The first line of gnuplot's complaint that says something.
std::string first_words(const std::string& output) {
  size_t begin = 0;
  while (begin < output.size()) {
    const size_t end = std::min(output.find('\n', begin), output.size());
    const std::string line = output.substr(begin, end - begin);
    if (line.find_first_not_of(" \t^") != std::string::npos) return line;
    begin = end + 1;
  }
  return "";
}

// gnuplot exits 0 when it cannot write its output (a full disk): a whole PNG starts with the
// format's signature and ends with its IEND chunk.
bool is_whole_png(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return false;
  const std::streamoff size = in.tellg();
  if (size < 20) return false;
  char head[8], tail[12];
  in.seekg(0);
  in.read(head, 8);
  in.seekg(size - 12);
  in.read(tail, 12);
  return in && std::string(head, 8) == "\x89PNG\r\n\x1a\n" && std::string(tail + 4, 4) == "IEND";
}

bool write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  return bool(out);
}

std::string run_gnuplot(const std::string& script, const std::vector<std::string>& data_files,
                        const std::vector<std::string>& data, const std::string& png_path) {
  io::OutputFile png;
  if (std::string e = png.open(png_path); !e.empty()) return e;
  std::error_code ec;
  const fs::path dir = fs::temp_directory_path(ec) / ("mxkit-plot-" + std::to_string(getpid()));
  fs::create_directories(dir, ec);
  if (ec) return "cannot create a temporary folder for the plot: " + ec.message();
  bool written = true;
  for (size_t i = 0; i < data_files.size(); ++i) {
    written = written && write_text(dir / data_files[i], data[i]);
  }
  written = written && write_text(dir / "plot.gp",
                                  "set terminal pngcairo size 1000,650 noenhanced\nset output " +
                                      quoted(png.write_path()) + "\ncd " + quoted(dir.string()) +
                                      "\n" + script);
  if (!written) {
    fs::remove_all(dir, ec);
    return "cannot write the plot's data to " + dir.parent_path().string() + " (is the disk full?)";
  }
  const std::string command = "gnuplot " + quoted((dir / "plot.gp").string()) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    fs::remove_all(dir, ec);
    return "cannot run gnuplot";
  }
  std::string output;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  fs::remove_all(dir, ec);
  if (status != 0) {
    if (status == 127 * 256 || output.find("not found") != std::string::npos) {
      return "gnuplot not found (install Debian's gnuplot-nox)";
    }
    const std::string said = first_words(output);
    return said.empty() ? "gnuplot failed with status " + std::to_string(status) + " and no message"
                        : "gnuplot failed: " + said;
  }
  if (!is_whole_png(png.write_path())) {
    return "gnuplot wrote no whole PNG for " + png_path + " (is the disk full?)";
  }
  return png.commit();
}

}  // namespace

std::string draw_line_plot(const LinePlot& plot, const std::string& png_path) {
  std::vector<std::string> files, data;
  std::ostringstream script;
  script << "set title " << quoted(plot.title) << "\nset xlabel " << quoted(plot.x_label)
         << "\nset ylabel " << quoted(plot.y_label) << "\nset key outside right\nset grid\nplot ";
  // gnuplot fails on a series without a finite point: such a series is left out.
  for (size_t i = 0; i < plot.series.size(); ++i) {
    const Series& s = plot.series[i];
    std::ostringstream rows;
    bool any = false;
    for (size_t j = 0; j < s.x.size(); ++j) {
      if (std::isfinite(s.x[j]) && std::isfinite(s.y[j])) {
        rows << s.x[j] << ' ' << s.y[j] << '\n';
        any = true;
      }
    }
    if (!any) continue;
    script << (files.empty() ? "" : ", ");
    files.push_back("series" + std::to_string(i) + ".dat");
    data.push_back(rows.str());
    script << quoted(files.back()) << " using 1:2 with " << (s.points ? "linespoints" : "lines")
           << " title " << quoted(s.title);
  }
  if (files.empty()) return "nothing to plot: no series has a finite value";
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
