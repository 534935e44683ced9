// A GPT-2 or Llama language model over a Backend (backend.h): the model code is written once and
// runs on the CPU backend (the reference) or the CUDA backend.
//
// The weights live twice: in params(), on the host, where they are initialized, read from files
// and written to them; and in the backend, where the passes run. On the CPU backend the two are
// the same memory. Elsewhere upload_params() and download_params() copy between them: after
// changing params() on the host, and before reading it.
//
// Every matrix product goes through Backend::matmul_* (linear layers) or attention_* (Q K^T,
// P V) with the model's Recipe, and with a stochastic-rounding stream distinct per
// (step, layer, site): sites 0-2 q/k/v, 3 attention, 4 attention output, 5 fc/gate, 6 up,
// 7 mlp output; the classifier is layer n_layers, site 0.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/model_config.h"
#include "mx/nn/params.h"
#include "mx/nn/recipe.h"

namespace mx::nn {

// The linear layers of a block, numbered by their stochastic-rounding site (above).
enum class LinearSite : int { kQ = 0, kK = 1, kV = 2, kAttnOut = 4, kFc = 5, kUp = 6, kProj = 7 };
inline constexpr LinearSite kLinearSites[] = {
    LinearSite::kQ,  LinearSite::kK,  LinearSite::kV,   LinearSite::kAttnOut,
    LinearSite::kFc, LinearSite::kUp, LinearSite::kProj};

// A block in steps, each ending where the next linear layers read their input (linear_input
// then gives it), for passes that quantize a block's weights in turn and so cannot run a step
// before the weights it uses are final (mx/ptq). x and `side` are host arrays of b * t rows.
enum class BlockStep {
  kNorm1,         // x: the block's input. Ends at the input of q, k and v.
  kAttention,     // x: the block's input; side := attention's output [rows, dim], the input of
                  // the output projection.
  kAttnResidual,  // x: the block's input, side: attention's output; x := x + the output
                  // projection (the residual stream after attention). Ends at the input of fc
                  // (and up).
  kMlp,           // x: the residual after attention; side := the MLP's activation
                  // [rows, hidden], the input of proj.
  kMlpResidual,   // x: the residual after attention, side: the activation; x := the block's
                  // output.
};

struct PassOptions {
  // Keep what backward() needs; the logits are then replaced by their gradient.
  bool training = false;
  // backward() adds grad_scale * d(mean loss)/d(params): 1 / micro-batches to accumulate a mean.
  float grad_scale = 1.0f;
  // Distillation: another model's finished logits for the same tokens (Model::device_logits; the
  // same vocabulary and device). The loss is then the KL divergence from their softmax to this
  // model's, per token, instead of the cross-entropy with the targets (which are still needed).
  Buf teacher_logits = {};
};

struct LayerActs;  // one block's activations (model_acts.h)

class Model {
 public:
  // A null backend means a CpuBackend on all hardware threads. Parameters start at zero:
  // call params().init(seed) or fill them by name, then upload_params().
  explicit Model(const ModelConfig& config, std::unique_ptr<Backend> backend = nullptr);
  ~Model();

  const ModelConfig& config() const { return config_; }
  Params& params() { return params_; }
  const Params& params() const { return params_; }
  Backend& backend() { return *backend_; }
  // The weights and gradients in the backend, in params()' layout.
  Buf param_buf() const { return weights_; }
  Buf grad_buf() const { return grads_; }
  // Copies between params() on the host and the backend (no-ops where they are shared).
  void upload_params();
  void download_params();
  void download_grads();

  void set_recipe(const Recipe& recipe) { recipe_ = recipe; }
  const Recipe& recipe() const { return recipe_; }
  // The step number mixed into the stochastic-rounding streams.
  void set_step(uint64_t step) { step_ = step; }

  // Sizes the activations for passes of up to `b` sequences of up to `t` tokens, after checking
  // that they fit in the memory this process may still take. Passes on smaller shapes reuse
  // them; a pass on a larger shape reserves again. "" or the reason.
  std::string reserve(int64_t b, int64_t t);
  // Bytes of the activation buffers reserved now (0 before the first pass).
  double reserved_activation_bytes() const { return reserved_bytes_; }
  // Bytes of the activations (forward and backward) of a pass of b sequences of t tokens, and
  // of a training run's state besides: weights, gradients and AdamW's two moments. Computed in
  // double, so that absurd shapes give a large number rather than an overflow.
  static double activation_bytes(const ModelConfig& config, int64_t b, int64_t t);
  static double training_bytes(const ModelConfig& config, int64_t b, int64_t t);

  // tokens, targets: [B, T] with T <= seq_len. Sets *loss to the mean cross-entropy over the
  // B * T tokens (targets may be null: then only the logits are computed). Returns "" or the
  // reason nothing valid was computed: T > seq_len, an id >= vocab, memory, or a cast the
  // recipe asked for that this shape cannot take.
  std::string forward(const uint32_t* tokens, const uint32_t* targets, int64_t b, int64_t t,
                      float* loss = nullptr, const PassOptions& options = {});
  // The last forward's logits [B * T, V] in the backend's memory, finished (the call waits for
  // the device), valid until the next pass: a teacher's for another model's distillation.
  Buf device_logits();
  // After a training forward: gradients += grad_scale * d(mean loss)/d(params).
  std::string backward() { return backward({}); }
  // The same, calling `ready(first, count)` as soon as the work that finishes the gradients of
  // params [first, first + count) is queued on the backend: the classifier when untied, the
  // final norm, each block from the last, then the embeddings. The ranges cover every
  // parameter once. A data-parallel rank starts their reduction there (ShardedAdamW).
  using GradsReady = std::function<void(int64_t first, int64_t count)>;
  std::string backward(const GradsReady& ready);
  void zero_grad();

  // Inference with packed weights: hands every linear layer's weight and the classifier's to
  // the backend to keep as recipe().weight_fwd's MX blocks (Backend::pack_weight), so that the
  // forward passes under that recipe read them packed instead of casting FP32 weights at each
  // pass. The weights must not change after: backward() is refused. Returns how many matrices
  // the backend packed (0 when the recipe casts weights to no packable MX format, or the
  // backend keeps no packed weights).
  // release_fp32 also gives the packed matrices' FP32 memory in params(), and the gradients',
  // back to the system (host-visible backends). A classifier tied to the embedding stays, as the
  // embedding lookup reads it, unless its blocks hold it exactly and the backend looks rows up
  // in them (Backend::embeds_from_packed). Released copies read as zeros after, passes under any
  // other weight cast are refused, and later calls pack nothing (returning what the releasing call
  // packed).
  int pack_weights(bool release_fp32 = false);
  // The same for weights that came from MX blocks (an MX model file; LoadedModel::stored_mx
  // names them with their specs): each named matrix is packed as those blocks, and products
  // under a recipe without a weight cast read it packed. A matrix counts, and its FP32 copy is
  // released, only where the blocks decode to its values exactly. With release, an untied token
  // embedding stored as blocks is packed too where the backend looks rows up in them. After a
  // release only recipes without a weight cast run.
  int pack_stored_weights(const std::map<std::string, QuantSpec>& stored,
                          bool release_fp32 = false);
  bool weights_packed() const { return packed_ > 0; }
  // Bytes the weights take now: the FP32 parameters whose pages were not released, plus the
  // backend's packed blocks.
  int64_t weight_bytes() const {
    return params_.size() * int64_t(sizeof(float)) - released_bytes_ + backend_->packed_bytes();
  }

  // Inference on one sequence with a key/value cache: each extend() runs the next t tokens of
  // the sequence begun by the last start_sequence(), attending to the keys and values the
  // earlier calls left in the cache, and leaves the t tokens' logits in logits(). The logits
  // are those forward() gives for the whole sequence so far: on the CPU they are the same bits.
  // The cache holds seq_len tokens. It needs a backend whose attention takes a cache and a
  // recipe that casts activations element-wise (none or bf16; weights may be MX): an MX cast
  // of V along the sequence lets a position's output depend on later tokens of its block.
  // can_cache() says whether both hold.
  bool can_cache() const;
  void start_sequence() { cached_ = 0, sequence_failed_ = false; }
  std::string extend(const uint32_t* tokens, int64_t t);
  int64_t cached_tokens() const { return cached_; }

  // Layer-wise passes, for post-training quantization (mx/ptq), which quantizes the blocks in
  // order and runs each on the outputs of the blocks before it. x is the residual stream,
  // [b * t, dim] FP32 on the host; backends with FP32 activations only. embed() writes the
  // embedding of b x t tokens into x; forward_block() runs block `layer` (recipe and step as
  // forward() would) on x and replaces it with the block's output.
  std::string embed(const uint32_t* tokens, int64_t b, int64_t t, float* x);
  std::string forward_block(int64_t layer, float* x, int64_t b, int64_t t);
  // One step of block `layer` (BlockStep); the five in order are forward_block().
  std::string forward_block_step(int64_t layer, BlockStep step, float* x, float* side, int64_t b,
                                 int64_t t);
  // After forward_block(layer), or the step that ends there: the input of that block's linear layer
  // at `site` as its product read it before any recipe cast, [b * t, in-features], on the host.
  std::string linear_input(int64_t layer, LinearSite site, std::vector<float>* out);
  // The same input's Gram matrix on the backend, X cast by `cast` (blocks along the in-features,
  // stochastic draws from `stream`): out [k, k] = cast(X)^T cast(X), float32, exactly symmetric
  // (Backend::gram), on the host. Only the k x k result crosses to the host.
  std::string linear_input_gram(int64_t layer, LinearSite site, const OperandCast& cast,
                                uint64_t stream, std::vector<float>* out);
  // The same input X [n, k] multiplied by other rows r [n, k] of the caller's, as the
  // backend's float32 product with no cast: out [k, k] = rᵀ X, on the host. r is the caller's and
  // is only read; with a backend whose memory is not the host's it crosses once to the backend.
  std::string linear_input_product(int64_t layer, LinearSite site, std::span<float> rows,
                                   std::vector<float>* out);
  // The offset into params() of a block's weight at `site` (-1: the architecture has none).
  int64_t linear_weight(int64_t layer, LinearSite site) const;

  // The logits of the last inference pass, on the host: all [B * T, vocab] of them, or one row.
  const float* logits();
  const float* logits_row(int64_t row);

  struct Acts;  // the activations, defined in model.cpp

 private:
  // The buffer holding the input of block `layer`'s linear layer at `site`, and its width.
  std::string linear_input_buf(int64_t layer, LinearSite site, Buf* in, int64_t* k);
  std::string check_tokens(const uint32_t* tokens, const uint32_t* targets, int64_t n) const;
  std::string check_weights_for_recipe() const;
  // Packs each linear weight and the classifier for which cast_of(offset) gives a cast.
  int pack_with(const std::function<std::optional<OperandCast>(int64_t)>& cast_of, bool stored,
                bool release_fp32);
  std::string reserve_cache(int64_t t);
  // reserve(), or with `one_block` the activations of one block that every block's layer-wise
  // pass reuses, and none of the classifier's or the backward's: layer-wise passes keep
  // nothing for a backward. A reservation for whole passes serves layer-wise ones too.
  std::string reserve_for(int64_t b, int64_t t, bool one_block);
  LayerActs& layer_acts(int64_t l);
  // The forward from the tokens already uploaded, for the pass's b_ x t_ tokens, at positions
  // cached_ on (use_cache) or 0: every layer, then the classifier's product into the logits
  // unless `logits` is false.
  void run_forward(bool use_cache, bool logits = true);
  // The parts of a block's forward pass (BlockPart flags in model_acts.h) on the activations of
  // block l; x is the block's input.
  void layer_forward(int64_t l, Buf x, bool use_cache, unsigned parts = ~0u);
  // A product input of `width` features as this pass hands it to the forward product: in a
  // training pass the whole buffer, with the room in which the backend may keep casts for the
  // backward (Backend::input_kept_count); else only the pass's values.
  Buf product_input(Buf x, int64_t width) const;
  std::string forward_block_parts(int64_t layer, float* x, float* side, int64_t b, int64_t t,
                                  unsigned parts);
  // Which bias gradients GPT-2's backward sums beside a pass it makes anyway, rather than in the
  // products' backward: decided once a pass (bias_sums), the same for every layer.
  struct BiasSums {
    // The layer norms sum those of the products that feed the residual stream (the attention
    // output's and the MLP's down-projection) from the gradient their backward reads; not where
    // the backend sums those biases in its casts of that gradient.
    bool in_norms = false;
    // Attention's backward sums Q's, K's and V's (Backend::attention_sums_qkv_biases), again
    // not where the casts of their gradients would.
    bool in_attention = false;
  };
  BiasSums bias_sums() const;
  void layer_backward(int64_t l, Buf x, Buf dres, const BiasSums& sums);
  const float* host_logits(int64_t first_row, int64_t rows);

  ModelConfig config_;
  Params params_;
  std::unique_ptr<Backend> backend_;
  Buf weights_, grads_;
  Recipe recipe_;
  uint64_t step_ = 0;
  int64_t b_ = 0, t_ = 0;          // the shape of the last pass
  int64_t cap_b_ = 0, cap_t_ = 0;  // the shape the activations are sized for
  double reserved_bytes_ = 0;
  PassOptions pass_;
  bool backward_ready_ = false;  // a training forward ran and nothing failed since
  std::unique_ptr<Acts> acts_;
  // The key/value cache: [seq_len, n_kv_heads * head_size] per layer, and the probabilities of
  // its attention, [n_heads, t, keys], sized for the largest extend() so far.
  std::vector<Buf> k_cache_, v_cache_;
  Buf cache_probs_;
  int64_t cached_ = 0;
  int packed_ = 0;  // matrices the last packing packed; 0 if none ever did
  bool fp32_released_ = false;
  int64_t released_bytes_ = 0;  // of the parameters' FP32 copies
  OperandCast packed_cast_;     // the weight cast the packed blocks are of (none: stored blocks)
  bool sequence_failed_ = false;
  std::vector<float> losses_, logits_;  // host copies
  std::vector<uint16_t> logits_bits_;   // bfloat16 logits as downloaded, before widening
};

// Samples a token from logits[vocab] / temperature restricted to the top_k largest (top_k <= 0
// or >= vocab: all; temperature <= 0: argmax). Draws one value from *rng_state (SplitMix64).
uint32_t sample_token(const float* logits, int64_t vocab, int top_k, float temperature,
                      uint64_t* rng_state);

}  // namespace mx::nn
