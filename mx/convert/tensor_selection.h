// Which float tensors of a checkpoint `mx quantize` quantizes. Quantizing every tensor hurts
// accuracy for little gain: embeddings (and the output head, which reads the same vocabulary)
// and normalisation gains are small or sensitive, and 1-D tensors (biases, gains, scalars) are
// a tiny share of the bytes. So the rules, in order, for a float32/float16/bfloat16 tensor:
//   1. a tensor with no elements is kept;
//   2. a name matching --skip is kept;
//   3. with --only, a matching name is quantized (that is an explicit request, so rule 4 does
//      not apply) and every other tensor is kept;
//   4. otherwise the tensor is quantized unless it is an embedding or output head (name contains
//      "embed", "wte", "wpe", "tok_embeddings", "token_embd" or "lm_head", or is
//      "output.weight"), a norm (name contains "norm" or "rms_", or a component of it starts
//      with "ln_"), or has fewer than 2 dimensions, each kept unless its include flag is set.
// Regular expressions are ECMAScript (std::regex) and match anywhere in the name.
#pragma once

#include <cstdint>
#include <regex>
#include <span>
#include <string>

namespace mx::convert {

struct SelectionRules {
  std::string only;  // regex; empty: every tensor
  std::string skip;  // regex; empty: none
  bool include_embeddings = false;
  bool include_norms = false;
  bool include_vectors = false;  // tensors of fewer than 2 dimensions
};

class TensorSelector {
 public:
  // "" when the tensor is to be quantized, else why it is kept: "empty", "--skip",
  // "not matched by --only", "embedding", "norm" or "1-D".
  std::string reason_to_keep(const std::string& name, std::span<const int64_t> shape) const;
  // "" when --only and --skip, where given, each match some name of `names` (the file's
  // tensors, `file` in the message); a pattern that matches none is a mistake, such as another
  // model's naming, rather than a request.
  std::string check_matches(std::span<const std::string> names, const std::string& file) const;

 private:
  friend std::string make_selector(const SelectionRules& rules, TensorSelector* out);

  SelectionRules rules_;
  std::regex only_, skip_;
};

// Compiles the regexes; a bad one is reported naming its flag.
std::string make_selector(const SelectionRules& rules, TensorSelector* out);

bool is_embedding_name(const std::string& name);
bool is_norm_name(const std::string& name);

}  // namespace mx::convert
