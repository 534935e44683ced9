// The settings of a training run small enough for a unit test: a one-layer byte-level GPT of
// width 64 with a 32-token context, batches of 4 x 32 tokens, validation every 4 steps and a
// checkpoint every 3. Tests change what they need.
#pragma once

#include <cstdint>
#include <string>

#include "mx/nn/model_config.h"
#include "mx/nn/recipe.h"
#include "mx/train/train_config.h"

namespace mx::test {

inline train::TrainConfig tiny_config(const std::string& data, const std::string& recipe,
                                      int64_t steps) {
  train::TrainConfig c;
  c.model_config = *nn::model_preset("tiny", nn::Arch::kGpt2);
  c.model_config.n_layers = 1;
  c.model_config.seq_len = 32;
  c.recipe = *nn::recipe_preset(recipe);
  c.data = data;
  c.tokenizer = "bytes";
  c.steps = steps;
  c.batch = 4;
  c.seq_len = 32;
  c.warmup = 2;
  c.eval_every = 4;
  c.eval_batches = 2;
  c.checkpoint_every = 3;
  return c;
}

}  // namespace mx::test
