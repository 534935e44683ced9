// A training run's log, RUN_DIR/log.csv: one row per step,
//   step,lr,train_loss,grad_norm,val_loss,tokens_per_s,elapsed_s
// (step counts from 1; val_loss is empty where no validation pass ran). Losses are printed
// with 9 significant digits, so float losses survive the text exactly and two runs can be
// compared bit for bit.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

namespace mx::train {

struct LogRow {
  int64_t step = 0;
  float lr = 0;
  float train_loss = 0;
  double grad_norm = 0;
  std::optional<double> val_loss;
  double tokens_per_s = 0;
  double elapsed_s = 0;
};

inline constexpr const char* kLogFile = "log.csv";
inline constexpr const char* kLogHeader =
    "step,lr,train_loss,grad_norm,val_loss,tokens_per_s,elapsed_s";

std::string format_log_row(const LogRow& row);

// Reads a log written by RunLog; a malformed line is an error naming the line.
std::string read_log(const std::string& path, std::vector<LogRow>* rows);

// Appends rows to a log file, flushing each, so a log survives an interruption up to the last
// step finished.
class RunLog {
 public:
  RunLog() = default;
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;
  ~RunLog();

  // Starts the log afresh with `rows` (a resumed run keeps those up to its checkpoint),
  // written atomically, then opens it for appending.
  std::string open(const std::string& path, const std::vector<LogRow>& rows);
  std::string append(const LogRow& row);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace mx::train
