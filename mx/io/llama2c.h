// llama2.c checkpoints (karpathy/llama2.c, the "legacy" version 0 export that run.c reads): a
// header of 7 little-endian int32
//   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
// (a negative vocab_size means the classifier is not shared with the embedding), then float32
// arrays in this order, each C order:
//   token_embedding [vocab, dim]          rms_att [L, dim]
//   wq [L, dim, dim]   wk [L, kv_dim, dim]   wv [L, kv_dim, dim]   wo [L, dim, dim]
//   rms_ffn [L, dim]   w1 [L, hidden, dim]   w2 [L, dim, hidden]   w3 [L, hidden, dim]
//   rms_final [dim]    freq_cis_real [seq, head_size/2]   freq_cis_imag [seq, head_size/2]
//   wcls [vocab, dim]  (unshared classifier only)
// with head_size = dim / n_heads and kv_dim = head_size * n_kv_heads. Bytes after the last
// array are allowed (run.c ignores them too). Functions return "" on success, else a one-line
// reason.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "mx/io/mapped_file.h"
#include "mx/io/safetensors.h"

namespace mx::io {

struct Llama2cConfig {
  int32_t dim = 0;
  int32_t hidden_dim = 0;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t vocab_size = 0;  // always positive here; see shared_classifier
  int32_t seq_len = 0;
  bool shared_classifier = true;  // the header's vocab_size was positive

  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return head_size() * n_kv_heads; }
};

// Checks the header values: all positive (vocab_size's magnitude), dim divisible by n_heads,
// n_heads by n_kv_heads, an even head size, and a total size that fits in int64 bytes.
std::string validate(const Llama2cConfig& c);

struct Llama2cTensor {
  std::string name;  // token_embedding, rms_att, wq, ..., freq_cis_imag, wcls
  std::vector<int64_t> shape;
  std::span<const float> data;  // into the checkpoint's mapping
  uint64_t file_offset = 0;     // where the array starts in the file
};

class Llama2cCheckpoint {
 public:
  const Llama2cConfig& config() const { return config_; }
  // In file order.
  const std::vector<Llama2cTensor>& tensors() const { return tensors_; }
  const Llama2cTensor* find(const std::string& name) const;

 private:
  friend std::string read_llama2c(const std::string& path, Llama2cCheckpoint* out);
  friend std::string parse_llama2c(std::span<const uint8_t> file, Llama2cCheckpoint* out);

  MappedFile mapping_;
  Llama2cConfig config_;
  std::vector<Llama2cTensor> tensors_;
};

// Maps the file and lays out the arrays; the floats are read in place.
std::string read_llama2c(const std::string& path, Llama2cCheckpoint* out);
// A whole file in memory, which the caller keeps alive while `*out` is used. The arrays are read
// in place, so `file` must be aligned for float (as a mapping or a heap buffer is).
std::string parse_llama2c(std::span<const uint8_t> file, Llama2cCheckpoint* out);

// Writes the weights as F32 safetensors under Llama names, one tensor per layer:
//   model.embed_tokens.weight, model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
//   model.layers.{i}.mlp.{gate_proj (w1), down_proj (w2), up_proj (w3)}.weight,
//   model.layers.{i}.input_layernorm.weight, model.layers.{i}.post_attention_layernorm.weight,
//   model.norm.weight, and lm_head.weight when the classifier is unshared.
// The freq_cis tables are not written (they follow from the config). q and k are copied as
// they are, in llama2.c's interleaved-pair rotary order (not permuted to Hugging Face's
// rotate-half order). Metadata: "format" = "pt", "llama2c.rope" = "interleaved",
// "llama2c.dim", "llama2c.hidden_dim", "llama2c.n_layers", "llama2c.n_heads",
// "llama2c.n_kv_heads", "llama2c.vocab_size", "llama2c.seq_len" (decimal),
// "llama2c.shared_classifier" ("true"/"false").
std::string llama2c_to_safetensors(const Llama2cCheckpoint& ckpt, const std::string& path);

// The tensors and metadata llama2c_to_safetensors writes, without writing them: the spans
// point into `ckpt`'s mapping.
std::string llama2c_named_tensors(const Llama2cCheckpoint& ckpt, std::vector<TensorToWrite>* out,
                                  std::map<std::string, std::string>* metadata);

}  // namespace mx::io
