// Validation figures of a model over a token split, in the windows of data::eval_batch (every
// token of the first max_batches * batch windows is a target once).
#pragma once

#include <cstdint>
#include <string>

#include "mx/data/token_shard.h"
#include "mx/nn/model.h"

namespace mx::train {

struct EvalWindow {
  int64_t batch = 8;
  int64_t seq_len = 64;
  int64_t max_batches = 8;  // <= 0: the whole split
  int threads = 0;          // host threads for the KL and top-1 of the logits (0: all)
};

// Mean next-token cross-entropy (nats) under the model's current recipe; NaN when the split
// holds no window. "" or the reason a pass failed.
std::string evaluate_loss(nn::Model& model, data::TokenView tokens, const EvalWindow& window,
                          double* loss);

// The batches of `window` that `tokens` gives (at most window.max_batches when set).
int64_t batch_count(data::TokenView tokens, const EvalWindow& window);
// Sizes the model for the largest batch the split gives: a batch beyond the split's windows
// means one batch of them all, not a reservation for windows that do not exist.
std::string reserve_for(nn::Model& model, data::TokenView tokens, const EvalWindow& window);

// What evaluate_loss sums, over every `stride`-th batch from `first` (the ranks of a
// data-parallel run divide the batches so): sums[0] += mean loss x tokens, sums[1] += tokens.
std::string add_loss_sums(nn::Model& model, data::TokenView tokens, const EvalWindow& window,
                          int64_t first, int64_t stride, double sums[2]);
// The mean loss of those sums; NaN when they hold no token.
double loss_of_sums(const double sums[2]);

// Direct-cast evaluation: the model with `recipe`'s forward casts against the same model
// unquantized (recipe fp32), token by token.
struct DirectCastResult {
  double loss = 0;            // cross-entropy with the casts
  double ppl = 0;             // exp(loss)
  double kl = 0;              // mean KL(p_fp32 || p_cast), nats
  double top1 = 0;            // fraction of positions where both argmaxes agree
  double reference_loss = 0;  // cross-entropy unquantized
  int64_t tokens = 0;
};

// With `reference`, the FP32 side is that model instead (of the same vocabulary): a quantized
// model file measured against the model it came from. Restores the models' recipes before
// returning. "" or the reason a pass failed.
std::string direct_cast_eval(nn::Model& model, const nn::Recipe& recipe, data::TokenView tokens,
                             const EvalWindow& window, DirectCastResult* result,
                             nn::Model* reference = nullptr);

}  // namespace mx::train
