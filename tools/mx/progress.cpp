#include "tools/mx/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace mx::tools {

Progress::Progress(std::string unit, int64_t total, bool enabled)
    : unit_(std::move(unit)),
      total_(std::max<int64_t>(total, 1)),
      enabled_(enabled),
      terminal_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  finish();
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, std::string_view detail) {
  if (!enabled_) return;
  done = std::clamp<int64_t>(done, 0, total_);
  const double seconds = elapsed_seconds();
  const bool last = done == total_;
  if (terminal_) {
    if (!last && seconds - last_draw_ < 0.2) return;
  } else {
    const int64_t tenth = done * 10 / total_;
    if (!last && tenth == last_tenth_) return;
    last_tenth_ = tenth;
  }
  last_draw_ = seconds;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * done / total_);
  const double eta = done > 0 ? seconds / double(done) * double(total_ - done) : 0.0;
  const std::string line =
      fmt::format("[{:<{}}] {}/{} {}, {:.0f} s, ETA {:.0f} s{}{}", std::string(filled, '#'), kWidth,
                  done, total_, unit_, seconds, eta, detail.empty() ? "" : "  ", detail);
  if (terminal_) {
    fmt::print(stderr, "\r{}\x1b[K", line);
    open_line_ = true;
  } else {
    fmt::print(stderr, "{}\n", line);
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (open_line_) fmt::print(stderr, "\n");
  open_line_ = false;
}

}  // namespace mx::tools
