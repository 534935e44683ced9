// A GPT-2 or Llama language model over a Backend, with FP32 master weights (params.h), the
// activations of the last forward pass, and a backward pass that accumulates into the
// parameter gradients.
//
// Every matrix product goes through Backend::matmul_* (linear layers) or attention_* (Q K^T,
// P V) with the model's Recipe, and with a stochastic-rounding stream distinct per
// (step, layer, site): sites 0-2 q/k/v, 3 attention, 4 attention output, 5 fc/gate, 6 up,
// 7 mlp output; the classifier is layer n_layers, site 0.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/model_config.h"
#include "mx/nn/params.h"
#include "mx/nn/recipe.h"

namespace mx::nn {

class Model {
 public:
  // A null backend means a CpuBackend on all hardware threads. Parameters start at zero:
  // call params().init(seed) or fill them by name.
  explicit Model(const ModelConfig& config, std::unique_ptr<Backend> backend = nullptr);
  ~Model();

  const ModelConfig& config() const { return config_; }
  Params& params() { return params_; }
  const Params& params() const { return params_; }
  Backend& backend() { return *backend_; }

  void set_recipe(const Recipe& recipe) { recipe_ = recipe; }
  const Recipe& recipe() const { return recipe_; }
  // The step number mixed into the stochastic-rounding streams.
  void set_step(uint64_t step) { step_ = step; }

  // tokens, targets: [B, T] with T <= seq_len. Returns the mean cross-entropy over the B * T
  // tokens, or 0 when targets is null (then only logits and probs are computed). Returns NaN
  // and computes nothing when T > seq_len or an id is >= vocab.
  float forward(const uint32_t* tokens, const uint32_t* targets, int64_t b, int64_t t);
  // After a forward with targets: params().grad() += d(mean loss)/d(params).
  void backward();
  void zero_grad();

  const float* logits() const;  // [B * T, vocab] of the last forward
  const float* probs() const;   // softmax of logits

 private:
  struct Acts;
  void allocate(int64_t b, int64_t t);
  void layer_forward(int64_t l, const float* x);
  void layer_backward(int64_t l, const float* x, float* dres);

  ModelConfig config_;
  Params params_;
  std::unique_ptr<Backend> backend_;
  Recipe recipe_;
  uint64_t step_ = 0;
  int64_t b_ = 0, t_ = 0;
  bool has_targets_ = false;
  std::vector<uint32_t> tokens_, targets_;
  std::unique_ptr<Acts> acts_;
};

// Samples a token from logits[vocab] / temperature restricted to the top_k largest (top_k <= 0
// or >= vocab: all; temperature <= 0: argmax). Draws one value from *rng_state (SplitMix64).
uint32_t sample_token(const float* logits, int64_t vocab, int top_k, float temperature,
                      uint64_t* rng_state);

}  // namespace mx::nn
