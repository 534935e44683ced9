// RUN_DIR/run.json: what a run's row of the training table (training_table.h) needs, small
// enough to archive beside the log when the checkpoint and the token shards stay where the run
// trained (a GPU host):
//   {"mxkit.train": the TrainConfig (train_config.h), "step": steps done at the last
//    checkpoint, "train_tokens": tokens in the run's training split}
// The trainer rewrites it atomically after each checkpoint.
#pragma once

#include <cstdint>
#include <string>

#include "mx/train/train_config.h"

namespace mx::train {

inline constexpr const char* kRunSummaryFile = "run.json";

struct RunSummary {
  TrainConfig config;
  int64_t step = 0;
  int64_t train_tokens = 0;
};

std::string write_run_summary(const std::string& path, const RunSummary& summary);
// Refuses a file that is not such an object: unknown or missing fields, a config that does not
// parse or validate, a step outside [0, steps], a negative token count.
std::string read_run_summary(const std::string& path, RunSummary* out);

}  // namespace mx::train
