// Training checkpoints: RUN_DIR/checkpoint.safetensors, a model file (nn/model_file.h) with,
// besides the parameters,
//   tensors   "optimizer.m", "optimizer.v"  AdamW's moments, F32, one flat array each
//   metadata  "mxkit.train"     the TrainConfig JSON (train_config.h)
//             "mxkit.state"     {"step": steps done, "adam_steps": ..., "sampler_seed": ...,
//                             "sampler_draws": ...}: where the run stands
//             "mxkit.checksum"  over every tensor and every other metadata entry
//                               (io/content_checksum.h), so a damaged file is refused by every
//                               reader, not only by a resume
// Saving is atomic, so an interruption leaves the previous checkpoint intact.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/data/batch_sampler.h"
#include "mx/io/safetensors.h"
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
// The same with the moments given whole (a data-parallel run gathers its shards' moments).
std::string save_checkpoint(const std::string& path, const TrainConfig& config,
                            const nn::Params& params, std::span<const float> m,
                            std::span<const float> v, const RunState& state);

// A checkpoint opened and checked before anything is built from it: its checksum, its settings,
// its run state, and the presence and shape of every tensor that the model its settings
// describe needs (so a damaged or hostile config cannot make a resume allocate without bound).
class Checkpoint {
 public:
  std::string open(const std::string& path);
  // The same checks on a whole file held in memory, which the caller keeps alive.
  std::string parse(std::span<const uint8_t> bytes);
  const TrainConfig& config() const { return config_; }
  const RunState& state() const { return state_; }
  // Copies the weights and moments into `params` and `optimizer`, built for config().
  std::string load(nn::Params* params, nn::AdamW* optimizer) const;
  // The same with the moments into m and v, params->count() elements each.
  std::string load(nn::Params* params, float* m, float* v) const;
  // The moments alone into m and v, `count` elements each (the parameters of the run's model);
  // the first moments are not read where m is null.
  std::string load_moments(int64_t count, float* m, float* v) const;

 private:
  std::string check();  // the checks of open, on file_
  // Copies the F32 tensor `name`, which must have `shape`, to dst.
  std::string copy_tensor(const std::string& name, const std::vector<int64_t>& shape,
                          float* dst) const;

  std::string path_;
  io::SafetensorsFile file_;
  TrainConfig config_;
  RunState state_;
};

}  // namespace mx::train
