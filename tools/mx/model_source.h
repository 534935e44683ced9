// What `mx eval` and `mx generate` share: a model file and its tokenizer from the command line.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

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

std::string open_model_source(const std::string& model, const std::string& tokenizer_flag,
                              const nn::DeviceOptions& device, const nn::Recipe& recipe,
                              ModelSource* out);

}  // namespace mx::tools
