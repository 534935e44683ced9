// A training run in a folder RUN_DIR:
//   data/train.bin, data/val.bin   the corpus tokenized (token_shard.h)
//   log.csv                        one row per step (run_log.h)
//   checkpoint.safetensors         the latest checkpoint (checkpoint.h)
//   model.safetensors              the final weights, once the run reaches its last step
// A step draws a batch (the sampler state is part of the checkpoint), runs forward and
// backward with the recipe, clips the gradient and takes one AdamW step; validation runs every
// eval_every steps and at the last one. Everything a step depends on is in the checkpoint, so
// a run stopped and resumed logs the same losses, bit for bit, as one that ran straight
// through (with any thread count: the CPU kernels' results do not depend on it).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "mx/data/paths.h"
#include "mx/train/run_log.h"
#include "mx/train/train_config.h"

namespace mx::train {

struct TrainOptions {
  bool resume = false;             // continue the checkpoint in run_dir
  std::optional<int64_t> stop_at;  // stop after this many steps, leaving a checkpoint
  int threads = 0;                 // 0: all hardware threads
  data::DataPaths paths;
};

struct TrainResult {
  int64_t steps_done = 0;   // total, including those before a resume
  bool finished = false;    // reached config.steps
  float train_loss = 0;     // mean over the last (up to) 10 steps of this process
  double val_loss = 0;      // the latest validation pass (NaN if none ran)
  double tokens_per_s = 0;  // over the steps this process ran
  double seconds = 0;
};

struct TrainCallbacks {
  std::function<void(const std::string&)> on_message;  // set-up progress, one line each
  std::function<void(const LogRow&, int64_t total_steps)> on_step;
};

// On resume, `config` is replaced by the checkpoint's settings; a different config.steps than
// the checkpoint's is an error unless `steps_given` is false.
std::string run_training(TrainConfig* config, bool steps_given, const std::string& run_dir,
                         const TrainOptions& options, const TrainCallbacks& callbacks,
                         TrainResult* result);

// Tokenizes config.data with config.tokenizer into run_dir/data unless the shards are there.
std::string prepare_run_data(const TrainConfig& config, const std::string& run_dir,
                             const data::DataPaths& paths,
                             const std::function<void(const std::string&)>& on_message);

}  // namespace mx::train
