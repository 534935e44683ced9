#include "mx/train/run_log.h"

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"

namespace mx::train {
namespace {

using io::cat;

// Splits a line at commas (no quoting: the log holds numbers only).
std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream s(line);
  std::string f;
  while (std::getline(s, f, ',')) fields.push_back(f);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

bool parse_double(const std::string& s, double* v) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  *v = std::strtod(s.c_str(), &end);
  return errno == 0 && end == s.c_str() + s.size();
}

}  // namespace

std::string format_log_row(const LogRow& r) {
  return fmt::format("{},{:.9g},{:.9g},{:.9g},{},{:.1f},{:.3f}", r.step, r.lr, r.train_loss,
                     r.grad_norm, r.val_loss ? fmt::format("{:.9g}", *r.val_loss) : "",
                     r.tokens_per_s, r.elapsed_s);
}

std::string read_log(const std::string& path, std::vector<LogRow>* rows) {
  std::ifstream in(path);
  if (!in) return cat(path, ": cannot open (", std::strerror(errno), ")");
  std::string line;
  if (!std::getline(in, line) || line != kLogHeader) {
    return cat(path, ": not a training log (expected the header ", kLogHeader, ")");
  }
  rows->clear();
  for (int64_t number = 2; std::getline(in, line); ++number) {
    const std::vector<std::string> f = split(line);
    LogRow r;
    double step = 0, lr = 0, loss = 0, val = 0;
    bool ok = f.size() == 7 && parse_double(f[0], &step) && parse_double(f[1], &lr) &&
              parse_double(f[2], &loss) && parse_double(f[3], &r.grad_norm) &&
              parse_double(f[5], &r.tokens_per_s) && parse_double(f[6], &r.elapsed_s);
    if (ok && !f[4].empty()) {
      ok = parse_double(f[4], &val);
      r.val_loss = val;
    }
    if (!ok) return cat(path, ":", number, ": malformed log line");
    // Steps count up from 1; a value past 2^53 (or a fraction) is no step a run logged.
    const int64_t previous = rows->empty() ? 0 : rows->back().step;
    if (!(step > double(previous) && step <= 9007199254740992.0 && step == std::floor(step))) {
      return cat(path, ":", number, ": step ", f[0], " does not follow step ", previous);
    }
    r.step = static_cast<int64_t>(step);
    r.lr = static_cast<float>(lr);
    r.train_loss = static_cast<float>(loss);
    rows->push_back(r);
  }
  return "";
}

RunLog::~RunLog() {
  if (file_ != nullptr) std::fclose(file_);
}

std::string RunLog::open(const std::string& path, const std::vector<LogRow>& rows) {
  std::string text = kLogHeader;
  text += '\n';
  for (const LogRow& r : rows) {
    text += format_log_row(r);
    text += '\n';
  }
  if (std::string e = io::write_text_atomically(path, text); !e.empty()) return e;
  file_ = std::fopen(path.c_str(), "a");
  if (file_ == nullptr)
    return cat(path, ": cannot open for appending (", std::strerror(errno), ")");
  path_ = path;
  return "";
}

std::string RunLog::append(const LogRow& row) {
  const std::string line = format_log_row(row) + "\n";
  if (std::fputs(line.c_str(), file_) < 0 || std::fflush(file_) != 0) {
    return cat(path_, ": write failed (", std::strerror(errno), ")");
  }
  return "";
}

}  // namespace mx::train
