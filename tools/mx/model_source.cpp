#include "tools/mx/model_source.h"

#include <fmt/format.h>

namespace mx::tools {

std::string open_model_source(const std::string& model, const std::string& tokenizer_flag,
                              const nn::DeviceOptions& device, const nn::Recipe& recipe,
                              ModelSource* out) {
  std::unique_ptr<nn::Backend> backend;
  if (std::string e = nn::make_backend(device, recipe, &backend); !e.empty()) return e;
  if (std::string e = nn::load_model_file(model, &out->loaded, std::move(backend)); !e.empty()) {
    return e;
  }
  const std::string spec = !tokenizer_flag.empty() ? tokenizer_flag : out->loaded.tokenizer;
  if (spec.empty()) return fmt::format("{} names no tokenizer; pass --tokenizer", model);
  if (std::string e =
          data::load_tokenizer(spec, data::data_paths_from_environment(), &out->tokenizer);
      !e.empty()) {
    return e;
  }
  const int64_t vocab = out->loaded.model->config().vocab;
  if (int64_t(out->tokenizer->vocab_size()) > vocab) {
    return fmt::format("tokenizer {} has {} tokens, more than the model's vocabulary of {}", spec,
                       out->tokenizer->vocab_size(), vocab);
  }
  return "";
}

void pack_for_inference(nn::Model& model, const std::map<std::string, QuantSpec>& stored_mx) {
  if (model.recipe().weight_fwd.is_none()) {
    model.pack_stored_weights(stored_mx, /*release_fp32=*/true);
  } else {
    model.pack_weights(/*release_fp32=*/true);
  }
}

void add_packing_flags(CLI::App* cmd, bool* unpacked, bool* fast_products) {
  cmd->add_flag("--unpacked", *unpacked,
                "Cast the FP32 weights at every pass instead of keeping them packed in MX");
  cmd->add_flag("--fast-products", *fast_products,
                "Products from packed MX weights (CPU) quantize their input to MXINT8 and "
                "multiply in integers: faster, with the error docs/NUMERICS.md section 16 bounds")
      ->excludes("--unpacked");
}

}  // namespace mx::tools
