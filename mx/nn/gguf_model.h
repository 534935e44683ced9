// Models in GGUF as llama.cpp runs them (its src/llama-arch.cpp, src/llama-model.cpp and
// gguf-py's constants): the parameters under llama.cpp's tensor names, and the
// architecture's hyperparameters as KVs. docs/GGUF.md lists the mapping.
//
//   Llama ("llama"): token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output,
//     ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output (untied only: llama.cpp
//     reads token_embd when it is missing). Q and K rows are stored as they are: mxkit rotates
//     adjacent pairs (x0, x1), (x2, x3), ... of each head, as llama2.c and Meta's checkpoints
//     do and as llama.cpp's RoPE does for this architecture. (Hugging Face's checkpoints
//     rotate the two halves instead, which is why llama.cpp's converter permutes their rows.)
//   GPT-2 ("gpt2"): token_embd, position_embd, blk.N.{attn_norm, attn_qkv (q, k and v stacked
//     by rows, weights and biases), attn_output, ffn_norm, ffn_up, ffn_down}, output_norm,
//     output (untied only); norms and projections with .weight and .bias.
//
// A matrix [rows, cols] is stored with ggml's dims {cols, rows}. mxkit's engine fixes some
// hyperparameters (norm epsilon 1e-5, RoPE base 10000 over the whole head); a file asking for
// others is refused rather than run differently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mx/io/gguf.h"
#include "mx/nn/model_file.h"

namespace mx::nn {

struct GgufModelTensor {
  std::string name;                 // llama.cpp's, e.g. "blk.0.attn_q.weight"
  std::vector<int64_t> shape;       // row-major
  std::vector<std::string> params;  // the parameters it holds, stacked by rows in this order
};

// The tensors of a model of `config`, in file order.
std::vector<GgufModelTensor> gguf_model_tensors(const ModelConfig& config);

// general.architecture and the architecture's hyperparameters.
std::vector<io::GgufKv> gguf_model_kvs(const ModelConfig& config);

// The tensor's values, its parameters stacked by rows.
std::vector<float> gather_gguf_tensor(const Params& params, const GgufModelTensor& t);

// The config a model GGUF describes. Its tensors are not read: check_gguf_holds does that.
std::string config_from_gguf(const io::GgufFile& file, ModelConfig* out);

// Reads a model GGUF: F32, F16, BF16 and MXFP4 tensors (the MXFP4 ones are listed in
// out->stored_mx, for inference from the stored blocks). The tokenizer is the file's own when
// it has tokenizer.ggml.* KVs (out->tokenizer is then `path`). Every tensor is checked before
// the model is allocated.
std::string load_gguf_model(const io::GgufFile& file, const std::string& path, LoadedModel* out,
                            std::unique_ptr<Backend> backend);

}  // namespace mx::nn
