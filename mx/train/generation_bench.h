// The speed of generation, apart from any text: a model (a preset with random weights, or a
// loaded one), a prompt of random tokens, and greedy decoding of new tokens under a recipe's
// forward casts, with the key/value cache or re-running the window. `mx bench generate` prints
// it.
#pragma once

#include <cstdint>
#include <string>

#include "mx/nn/model.h"

namespace mx::train {

struct GenerationBenchConfig {
  int64_t prompt_tokens = 64;
  int64_t new_tokens = 64;  // at least 2: the rate is timed from the first to the last
  bool use_cache = true;
  uint64_t seed = 1;
};

struct GenerationBenchResult {
  std::string device;        // Backend::device_description
  bool cached = false;       // whether the cache was used (the model and recipe allow it)
  double first_token_s = 0;  // the prompt's pass and the first token drawn from it
  double tokens_per_s = 0;   // each later token: its pass and its draw
  int64_t peak_memory = 0;   // Backend::peak_memory at the end
  int64_t resident = 0;      // this process's resident memory at the end (io::resident_bytes)
};

// Runs on `model` as it is (its weights and recipe).
std::string bench_generation(nn::Model& model, const GenerationBenchConfig& config,
                             GenerationBenchResult* result);

}  // namespace mx::train
