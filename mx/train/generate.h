// Text generation: sampling one token at a time with temperature and top-k (nn::sample_token).
// Where the model can keep a key/value cache (Model::can_cache), the prompt runs once and each
// new token is one more position; once the context is full, and without a cache, each token
// re-runs the model over the last seq_len tokens. Both ways draw the same tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "mx/nn/model.h"

namespace mx::train {

struct SampleOptions {
  int64_t max_new_tokens = 200;
  float temperature = 0.8f;  // <= 0: greedy
  int top_k = 40;            // <= 0: the whole vocabulary
  uint64_t seed = 1;
  std::vector<uint32_t> stop_tokens;  // generation ends after emitting one of these
  bool use_cache = true;              // where the model can keep one
  // Called with each step's logits (vocab values) before its token is drawn.
  std::function<void(const float* logits)> on_logits;
};

// Appends up to max_new_tokens to `tokens` (which must not be empty), calling on_token for
// each as it is drawn. "" or the reason a pass failed.
std::string generate(nn::Model& model, std::vector<uint32_t>* tokens, const SampleOptions& options,
                     const std::function<void(uint32_t)>& on_token = {});

}  // namespace mx::train
