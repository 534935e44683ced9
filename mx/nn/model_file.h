// Model weights on disk. Every model file mxkit writes is a safetensors file: each parameter
// as an F32 tensor under its Hugging Face name (params.h), and the "__metadata__" keys
//   "mxkit.model"      the ModelConfig as compact JSON (model_config_to_json)
//   "mxkit.tokenizer"  what load_tokenizer needs to rebuild the tokenizer ("bytes", "gpt2", a path)
// so any safetensors reader can open the weights. (The "mxkit." prefix keeps these apart from
// the "mx.NAME" keys that describe MX-quantized tensors, mx/io/mx_safetensors.h.)
//
// load_model_file reads, besides those files:
//   - llama2.c checkpoints (*.bin, e.g. stories260K.bin), with the tokenizer tok{vocab}.bin
//     beside them when present;
//   - safetensors converted from llama2.c (the "llama2c.*" metadata of llama2c_to_safetensors);
//   - files whose weights `mx quantize` stored as MX blocks and scales (dequantized on load);
//   - a training run's folder (its checkpoint.safetensors);
//   - model GGUF files (gguf_model.h), whose tokenizer is their own;
//   - Hugging Face GPT-2 and Llama checkpoints (hf_model.h): a model.safetensors with the
//     config.json beside it, a model.safetensors.index.json and the shards it names, or the
//     folder that holds either; GPT-2's tokenizer for GPT-2's vocabulary, a Llama's
//     tokenizer.model from the folder.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/io/safetensors.h"
#include "mx/nn/model.h"

namespace mx::nn {

inline constexpr std::string_view kModelConfigKey = "mxkit.model";
inline constexpr std::string_view kTokenizerKey = "mxkit.tokenizer";

std::string model_config_to_json(const ModelConfig& config);
// Unknown or missing keys and invalid sizes (validate) are errors.
std::string parse_model_config_json(std::string_view json, ModelConfig* out);

// What a model file holds: the parameters as F32 tensors (spans into `params`) and the
// metadata above. Writers of richer files (training checkpoints) add to both.
void model_file_contents(const ModelConfig& config, const Params& params,
                         std::string_view tokenizer, std::vector<io::TensorToWrite>* tensors,
                         std::map<std::string, std::string>* metadata);

// Checks, before anything is allocated for the model, that `file` holds every tensor `config`
// describes with the shape it needs (plain, or MX with that logical shape). A config is thereby
// bounded by what the file can hold: a vocabulary of 10^12 or a billion layers is refused here
// rather than allocated.
std::string check_file_holds(const io::SafetensorsFile& file, const ModelConfig& config);

// The model file with its checksum (io/content_checksum.h), written atomically.
std::string save_model_file(const std::string& path, const ModelConfig& config,
                            const Params& params, std::string_view tokenizer);

// The same with the parameters named in `mx` stored as those MX tensors (NAME.blocks,
// NAME.scales, "mx.NAME": mx/io/mx_safetensors.h) instead of F32, as `mx quantize` writes
// them; each must have its parameter's shape. load_model_file reads it back, decoding them.
std::string save_model_file_mx(const std::string& path, const ModelConfig& config,
                               const Params& params, std::string_view tokenizer,
                               const std::map<std::string, MxTensor>& mx);

struct LoadedModel {
  std::unique_ptr<Model> model;  // on the backend it was loaded with, recipe fp32
  std::string tokenizer;         // "" when the file names none
  // "mxkit", "llama2c", "llama2c-safetensors", "gguf", "hf-gpt2" or "hf-llama"
  std::string kind;
  // The parameters the file stores as MX blocks, with their specs (Model::pack_stored_weights).
  std::map<std::string, QuantSpec> stored_mx;
};

// Errors name the file and the problem: a damaged file (its checksum, when it has one), a
// missing tensor, a wrong shape, a non-float dtype.
std::string load_model_file(const std::string& path, LoadedModel* out, int threads = 0);
// The same, the model running on `backend` (null: a CpuBackend on all hardware threads).
std::string load_model_file(const std::string& path, LoadedModel* out,
                            std::unique_ptr<Backend> backend);

// The safetensors part of load_model_file, for a file already parsed (errors name no path).
std::string load_model_safetensors(const io::SafetensorsFile& file, LoadedModel* out,
                                   std::unique_ptr<Backend> backend = nullptr);

}  // namespace mx::nn
