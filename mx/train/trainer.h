// A training run in a folder RUN_DIR:
//   data/train.bin, data/val.bin   the corpus tokenized (token_shard.h)
//   data/source.json               what the shards were made from: {"data": ..., "tokenizer": ...}
//   log.csv                        one row per step (run_log.h)
//   checkpoint.safetensors         the latest checkpoint (checkpoint.h)
//   model.safetensors              the final weights, once the run reaches its last step
//   .lock                          held (flock) by the process training in the folder
// A step draws a batch (the sampler state is part of the checkpoint), runs forward and
// backward with the recipe, clips the gradient and takes one AdamW step; validation runs every
// eval_every steps and at the last one. Everything a step depends on is in the checkpoint, so
// a run stopped and resumed logs the same losses, bit for bit, as one that ran straight
// through (with any thread count: the CPU kernels' results do not depend on it).
//
// A folder cannot mix two runs: one process at a time trains in it; shards made from other data
// or with another tokenizer are made again for a new run and refused by a resume; a resume
// refuses a damaged log rather than drop its rows.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "mx/data/paths.h"
#include "mx/nn/communicator.h"
#include "mx/train/run_log.h"
#include "mx/train/train_config.h"

namespace mx::train {

struct TrainOptions {
  bool resume = false;             // continue the checkpoint in run_dir
  std::optional<int64_t> stop_at;  // stop after this many steps, leaving a checkpoint
  int threads = 0;                 // 0: all hardware threads
  std::string device = "cpu";      // or "cuda" (nn/devices/devices.h)
  bool packed_products = false;    // cuda: nn::DeviceOptions::packed_products
  std::string product_algorithms;  // cuda: nn::DeviceOptions::product_algorithms
  data::DataPaths paths;
  // Data-parallel training (nn/data_parallel.h): this call is rank comm->rank() of
  // comm->size(), each rank a thread or process of its own with the same config and run folder,
  // taking its slice of every global batch; AdamW runs sharded (nn/sharded_adamw.h). Rank 0
  // holds the folder: it tokenizes the data and writes the log, the checkpoints (the whole
  // state, as one rank's) and the model. Null: one rank, as before.
  nn::Communicator* comm = nullptr;
  // Ranks whose communicator needs the rank's backend (NCCL, on its GPU's stream): this call is
  // rank `rank` of `world`, on GPU `gpu`, and make_comm makes its communicator once the
  // trainer has made the backend. Used when comm is null (with world 1 too: one rank through
  // the data-parallel path).
  int rank = 0, world = 1, gpu = 0;
  std::function<std::string(nn::Backend&, std::unique_ptr<nn::Communicator>*)> make_comm;
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

// The files of RUN_DIR/data, which runs of one corpus and tokenizer may share.
inline constexpr const char* kRunDataFiles[] = {"train.bin", "val.bin", "source.json"};

}  // namespace mx::train
