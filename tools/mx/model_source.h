// What `mx eval` and `mx generate` share: a model file and its tokenizer from the command line.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "mx/data/token_shard.h"
#include "mx/data/tokenizer.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/model_file.h"
#include "mx/nn/recipe.h"

namespace mx::tools {

struct ModelSource {
  nn::LoadedModel loaded;
  std::unique_ptr<data::Tokenizer> tokenizer;
};

// Loads MODEL (nn::load_model_file) and the tokenizer: `tokenizer_flag` if given, else the
// one the file names. Checks the tokenizer's vocabulary fits the model's.
// The model runs on `device` (its activations chosen for `recipe`, nn/devices/devices.h).
// Keeps the model's weights packed in MX for generation on the CPU, giving back their FP32
// memory: as the recipe casts them, or, with no weight cast, as the file stored them.
void pack_for_inference(nn::Model& model, const std::map<std::string, QuantSpec>& stored_mx);

// The flags that choose how packed weights run, shared by the commands that pack them:
// --unpacked, and --fast-products (which excludes it).
void add_packing_flags(CLI::App* cmd, bool* unpacked, bool* fast_products);

// --packed-products (nn::DeviceOptions::packed_products), for the commands that train.
void add_packed_products_flag(CLI::App* cmd, bool* packed_products);
// --product-algorithms FILE (nn::DeviceOptions::product_algorithms), for the same commands.
void add_product_algorithms_option(CLI::App* cmd, std::string* path);

// `wrap`, when given, receives the device's backend and returns the one the model runs on
// (a backend that wraps it, e.g. nn::CastProbe).
using WrapBackend = std::function<std::unique_ptr<nn::Backend>(std::unique_ptr<nn::Backend>)>;
std::string open_model_source(const std::string& model, const std::string& tokenizer_flag,
                              const nn::DeviceOptions& device, const nn::Recipe& recipe,
                              ModelSource* out, const WrapBackend& wrap = {});

// The tokens a command evaluates a model on: --data's validation split (`all`: the whole
// corpus), tokenized with `tokenizer`; without --data, the validation shard of the training run
// whose folder MODEL is or is in. `view` points into `owned` or `shard`; `name` says where
// they came from.
struct EvalTokens {
  std::vector<uint32_t> owned;
  data::TokenShard shard;
  data::TokenView view;
  std::string name;
};
std::string open_eval_tokens(const std::string& model, const std::string& data_flag, bool all,
                             const data::Tokenizer& tokenizer, EvalTokens* out);

// The evaluation windows' length: --seq-len when given (0: min(context, 256)), checked against
// `context` (the shortest of the models evaluated, which `whose` names in the error, e.g. "the
// model's") and against the tokens, which must hold one window.
std::string eval_seq_len(int64_t flag, int64_t context, const char* whose, const EvalTokens& tokens,
                         int64_t* seq_len);

}  // namespace mx::tools
