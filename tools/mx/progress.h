// A one-line progress display on stderr for long commands: a bar, done/total, elapsed time,
// the estimated time left and a free-form detail (a loss, a tensor name). On a terminal the
// line is redrawn in place at most five times a second; otherwise (logs, pipes) a plain line
// is printed at each tenth of the work, so logs stay short.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace mx::tools {

class Progress {
 public:
  // `unit` names what is counted ("tensors", "steps").
  Progress(std::string unit, int64_t total, bool enabled = true);
  ~Progress();

  // Reports `done` of total, with `detail` after the counts. The last call (done == total) is
  // always drawn.
  void update(int64_t done, std::string_view detail = {});
  // Ends the line (once); called by the destructor too.
  void finish();

 private:
  double elapsed_seconds() const;

  std::string unit_;
  int64_t total_;
  bool enabled_, terminal_, open_line_ = false;
  std::chrono::steady_clock::time_point start_;
  double last_draw_ = -1;
  int64_t last_tenth_ = -1;
};

}  // namespace mx::tools
