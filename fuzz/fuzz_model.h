// What the model-loading fuzz targets do with a model a loader accepted: its config must be
// valid, and a forward pass over a few tokens must succeed or fail with a one-line error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "mx/nn/model_file.h"

namespace mx::fuzz {

inline void check_loaded_model(nn::LoadedModel& loaded) {
  nn::Model& model = *loaded.model;
  const nn::ModelConfig& c = model.config();
  if (!nn::validate(c).empty()) fail("a loaded model has an invalid config");
  const int64_t t = c.seq_len < 3 ? c.seq_len : 3;
  std::vector<uint32_t> tokens(size_t(t), 0), targets(size_t(t), uint32_t(c.vocab - 1));
  float loss = 0;
  check_error(model.forward(tokens.data(), targets.data(), 1, t, &loss));
}

}  // namespace mx::fuzz
