// Training checkpoints: RUN_DIR/checkpoint.safetensors, a model file (nn/model_file.h) with,
// besides the parameters,
//   tensors   "optimizer.m", "optimizer.v"  AdamW's moments, F32, one flat array each
//   metadata  "mxkit.train"     the TrainConfig JSON (train_config.h)
//             "mxkit.state"     {"step": steps done, "adam_steps": ..., "sampler_seed": ...,
//                             "sampler_draws": ...}: where the run stands
//             "mxkit.checksum"  a 64-bit hash (16 hex digits) of every tensor's bytes and the
//                            metadata above, so a corrupted file is refused rather than
//                            resumed
// Saving is atomic, so an interruption leaves the previous checkpoint intact.
#pragma once

#include <cstdint>
#include <string>

#include "mx/data/batch_sampler.h"
#include "mx/nn/adamw.h"
#include "mx/nn/params.h"
#include "mx/train/train_config.h"

namespace mx::train {

struct RunState {
  int64_t step = 0;  // steps completed
  int64_t adam_steps = 0;
  data::SamplerState sampler;
};

inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";

std::string save_checkpoint(const std::string& path, const TrainConfig& config,
                            const nn::Params& params, const nn::AdamW& optimizer,
                            const RunState& state);

// Loads into `params` and `optimizer`, which must have been built for `config->model_config`
// once read: call read_checkpoint_config first. Refuses a file whose checksum, config or
// tensor shapes do not match.
std::string read_checkpoint_config(const std::string& path, TrainConfig* config);
std::string load_checkpoint(const std::string& path, const TrainConfig& config, nn::Params* params,
                            nn::AdamW* optimizer, RunState* state);

}  // namespace mx::train
