#include "mx/train/generate.h"

#include <algorithm>

namespace mx::train {

int64_t generate(nn::Model& model, std::vector<uint32_t>* tokens, const SampleOptions& o,
                 const std::function<void(uint32_t)>& on_token) {
  const int64_t ctx = model.config().seq_len, vocab = model.config().vocab;
  uint64_t rng = o.seed;
  int64_t made = 0;
  while (made < o.max_new_tokens && !tokens->empty()) {
    const int64_t t = std::min<int64_t>(ctx, int64_t(tokens->size()));
    const uint32_t* window = tokens->data() + (tokens->size() - size_t(t));
    model.forward(window, nullptr, 1, t);
    const uint32_t next =
        nn::sample_token(model.logits() + (t - 1) * vocab, vocab, o.top_k, o.temperature, &rng);
    tokens->push_back(next);
    ++made;
    if (on_token) on_token(next);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) break;
  }
  return made;
}

}  // namespace mx::train
