// Hugging Face GPT-2 checkpoints: the model.safetensors that GPT2Model or GPT2LMHeadModel's
// save_pretrained writes, with its config.json beside it. Names start with "transformer."
// (GPT2LMHeadModel) or not (GPT2Model). The linear layers are Conv1D, whose weights are stored
// [in, out] (y = x W + b), and c_attn holds q, k and v side by side along its out axis; the
// engine's layers are [out, in] with q, k and v apart (params.h), so the reader transposes and
// splits. Names and layout: transformers' modeling_gpt2.py and pytorch_utils.py (Conv1D).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "mx/io/safetensors.h"
#include "mx/nn/model_config.h"

namespace mx::nn {

// Whether `file` holds Hugging Face GPT-2 tensors (block 0's c_attn, with or without the prefix).
bool is_hf_gpt2(const io::SafetensorsFile& file);

// The engine's config from config.json's text. Refused, in one line: another model_type, an
// activation other than the tanh GELU (gelu_new), a layer-norm epsilon other than the engine's
// 1e-5, cross-attention, attention scaled other than by 1/sqrt(head size).
std::string hf_gpt2_config(std::string_view config_json, ModelConfig* out);

// The engine's parameters under its names, as F32 tensors whose bytes live in `storage`: the
// Conv1D weights transposed to [out, in], c_attn's weight and bias split into q, k and v. Every
// tensor the config needs must be there with its shape; the causal-mask buffers of older files
// (attn.bias, attn.masked_bias) and an lm_head.weight of a tied model are not read.
std::string hf_gpt2_engine_tensors(const io::SafetensorsFile& file, const ModelConfig& config,
                                   std::vector<std::vector<float>>* storage,
                                   std::vector<io::SafetensorsTensor>* out);

}  // namespace mx::nn
