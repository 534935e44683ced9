// Hugging Face checkpoints of the two architectures the engine runs: the model.safetensors that
// transformers' save_pretrained writes, with its config.json beside it. Layouts, from
// transformers' modeling_gpt2.py, modeling_llama.py and convert_llama_weights_to_hf.py:
//   - GPT-2 (GPT2Model, GPT2LMHeadModel): names with or without "transformer."; the linear
//     layers are Conv1D, weights stored [in, out] (y = x W + b); c_attn holds q, k and v side by
//     side along its out axis. The engine's layers are [out, in] with q, k and v apart
//     (params.h), so the reader transposes and splits.
//   - Llama (LlamaForCausalLM): the engine's own names (params.h) and [out, in] weights, but q
//     and k rotate the halves of each head (RoPE's "rotate_half") where the engine, as Meta's
//     and llama2.c's code, rotates adjacent pairs: the conversion script reorders each head's
//     rows (2i + j -> j * head_size/2 + i, j = 0, 1), which the reader undoes.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/io/safetensors.h"
#include "mx/nn/model_config.h"
#include "mx/nn/params.h"

namespace mx::nn {

// Whether `file` holds Hugging Face tensors of GPT-2 (block 0's c_attn, with or without the
// prefix) or Llama (block 0's q_proj) with none of mxkit's or llama2.c's metadata.
bool is_hf_checkpoint(const io::SafetensorsFile& file);

// The engine's config from config.json's text, by its model_type ("gpt2" or "llama"). Refused,
// in one line, what the engine does not run: other model types and activations (GPT-2's tanh
// GELU, Llama's SiLU), a norm epsilon other than 1e-5, GPT-2's cross-attention or other
// attention scaling, Llama's RoPE other than base 10000 unscaled over the whole head, biases.
std::string hf_config(std::string_view config_json, ModelConfig* out);

// The engine's parameters under its names, as F32 tensors whose bytes live in `storage` (the
// layouts above, converted), from a checkpoint's files (one, or the shards that
// model.safetensors.index.json lists). Every tensor the config needs must be there with its
// shape; a GPT-2 file's causal-mask buffers (attn.bias, attn.masked_bias) and a tied model's
// lm_head.weight are not read.
std::string hf_engine_tensors(std::span<const io::SafetensorsFile* const> files,
                              const ModelConfig& config, std::vector<std::vector<float>>* storage,
                              std::vector<io::SafetensorsTensor>* out);

// The shard file names that model.safetensors.index.json's "weight_map" names, each once, in
// order of first mention; an error for a malformed index or a name that is not a plain file
// name in the index's folder.
std::string hf_shard_names(std::string_view index_json, std::vector<std::string>* out);

// The other way, for transformers' from_pretrained: `config` as config.json text, and the
// parameters in the layouts above (GPT-2 under "transformer.", the classifier only when untied)
// as F32 tensors whose bytes live in `storage`.
std::string hf_config_json(const ModelConfig& config);
void hf_checkpoint_tensors(const ModelConfig& config, const Params& params,
                           std::vector<std::vector<float>>* storage,
                           std::vector<io::TensorToWrite>* out);

}  // namespace mx::nn
