// Model parameters and their gradients: one flat FP32 buffer each, with named views.
//
// Names follow the Hugging Face checkpoints so that a loader can fill tensors by name:
//   Llama: model.embed_tokens.weight, model.layers.{i}.input_layernorm.weight,
//          model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
//          model.layers.{i}.post_attention_layernorm.weight,
//          model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.norm.weight, lm_head.weight
//   GPT-2: transformer.wte.weight, transformer.wpe.weight, transformer.h.{i}.ln_1.{weight,bias},
//          transformer.h.{i}.attn.{q,k,v}_proj.{weight,bias} (Hugging Face's fused c_attn,
//          transposed and split in three), transformer.h.{i}.attn.c_proj.{weight,bias},
//          transformer.h.{i}.ln_2.*, transformer.h.{i}.mlp.c_fc.*, transformer.h.{i}.mlp.c_proj.*,
//          transformer.ln_f.{weight,bias}, lm_head.weight (untied only)
// Linear weights are [out, in] (y = x W^T); GPT-2's Conv1D weights need a transpose on load.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "mx/nn/model_config.h"

namespace mx::nn {

enum class ParamKind { kMatrix, kEmbedding, kNorm, kBias };

struct ParamView {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  int64_t size = 0;
  ParamKind kind = ParamKind::kMatrix;
  // Weight decay applies to linear-layer matrices only (not to norms, biases, embeddings).
  bool decays() const { return kind == ParamKind::kMatrix; }
};

// Offsets of one block's tensors into the flat buffers (-1: absent). `fc` is GPT-2's c_fc or
// Llama's gate_proj, `up` is Llama's up_proj, `proj` GPT-2's mlp.c_proj or Llama's down_proj.
struct LayerOffsets {
  int64_t ln1_w = -1, ln1_b = -1, wq = -1, bq = -1, wk = -1, bk = -1, wv = -1, bv = -1;
  int64_t wo = -1, bo = -1, ln2_w = -1, ln2_b = -1, fc = -1, fc_b = -1, up = -1, proj = -1,
          proj_b = -1;
};

// Zero-filled floats from calloc: the system supplies their pages on first touch, so the
// gradients of a model that only runs inference take no memory.
class ZeroedFloats {
 public:
  explicit ZeroedFloats(int64_t n = 0);
  int64_t size() const { return n_; }
  float* data() { return p_.get(); }
  const float* data() const { return p_.get(); }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> p_;
  int64_t n_ = 0;
};

class Params {
 public:
  // With allocate = false only the views are built (data() and grad() stay empty): enough to
  // list names, shapes and the total count of a model too big to hold.
  explicit Params(const ModelConfig& config, bool allocate = true);

  int64_t count() const { return views_.back().offset + views_.back().size; }

  int64_t size() const { return int64_t(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float* grad() { return grad_.data(); }
  const float* grad() const { return grad_.data(); }

  const std::vector<ParamView>& views() const { return views_; }
  const ParamView* find(const std::string& name) const;  // null when absent
  const ParamView* find_at(int64_t offset) const;        // the view starting there, or null
  float* get(const std::string& name);                   // null when absent
  float* grad_of(const std::string& name);               // null when absent

  // Offsets of the tensors the model uses.
  const std::vector<LayerOffsets>& layers() const { return layers_; }
  int64_t wte() const { return wte_; }
  int64_t wpe() const { return wpe_; }  // -1 for Llama
  int64_t norm_w() const { return norm_w_; }
  int64_t norm_b() const { return norm_b_; }   // -1 for Llama
  int64_t classifier() const { return cls_; }  // == wte() when tied

  // GPT-2-style initialization: matrices and embeddings N(0, 0.02), residual output
  // projections N(0, 0.02 / sqrt(2 n_layers)), norm weights 1, biases 0. Deterministic in
  // `seed` on every platform (SplitMix64 + Box-Muller).
  void init(uint64_t seed);

 private:
  int64_t add(const std::string& name, std::vector<int64_t> shape, ParamKind kind);

  ModelConfig config_;
  std::vector<ParamView> views_;
  ZeroedFloats data_, grad_;
  std::vector<LayerOffsets> layers_;
  int64_t wte_ = -1, wpe_ = -1, norm_w_ = -1, norm_b_ = -1, cls_ = -1;
};

}  // namespace mx::nn
