#include "mx/train/generate.h"

#include <algorithm>

namespace mx::train {

std::string generate(nn::Model& model, std::vector<uint32_t>* tokens, const SampleOptions& o,
                     const std::function<void(uint32_t)>& on_token) {
  if (tokens->empty()) return "generation needs at least one token to start from";
  const int64_t ctx = model.config().seq_len, vocab = model.config().vocab;
  // Sized once for the longest window, so that the growing context does not reallocate.
  const int64_t longest =
      std::min<int64_t>(ctx, int64_t(tokens->size()) + std::min<int64_t>(o.max_new_tokens, ctx));
  if (std::string e = model.reserve(1, std::max<int64_t>(longest, 1)); !e.empty()) return e;
  const bool cache = o.use_cache && model.can_cache();
  if (cache) model.start_sequence();
  uint64_t rng = o.seed;
  for (int64_t made = 0; made < o.max_new_tokens; ++made) {
    const int64_t t = std::min<int64_t>(ctx, int64_t(tokens->size()));
    const uint32_t* window = tokens->data() + (tokens->size() - size_t(t));
    // The cache holds the window's first tokens while the sequence still fits the context.
    const int64_t fresh = t - model.cached_tokens();
    const bool extend = cache && int64_t(tokens->size()) <= ctx;
    const std::string e = extend ? model.extend(window + model.cached_tokens(), fresh)
                                 : model.forward(window, nullptr, 1, t);
    if (!e.empty()) return e;
    const int64_t last_row = (extend ? fresh : t) - 1;
    // One download of the row from a GPU, shared by the callback and the sampler.
    const float* logits = model.logits_row(last_row);
    if (logits == nullptr) return "the pass left no logits";
    if (o.on_logits) o.on_logits(logits);
    const uint32_t next = nn::sample_token(logits, vocab, o.top_k, o.temperature, &rng);
    tokens->push_back(next);
    if (on_token) on_token(next);
    if (std::find(o.stop_tokens.begin(), o.stop_tokens.end(), next) != o.stop_tokens.end()) break;
  }
  return "";
}

}  // namespace mx::train
