#include "tools/mx/model_source.h"

#include <fmt/format.h>

#include <filesystem>

#include "mx/data/batch_sampler.h"
#include "mx/train/eval_data.h"

namespace mx::tools {

std::string open_model_source(const std::string& model, const std::string& tokenizer_flag,
                              const nn::DeviceOptions& device, const nn::Recipe& recipe,
                              ModelSource* out, const WrapBackend& wrap) {
  std::unique_ptr<nn::Backend> backend;
  if (std::string e = nn::make_backend(device, recipe, &backend); !e.empty()) return e;
  if (wrap) backend = wrap(std::move(backend));
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
  if (std::string e =
          data::check_tokenizer_fits_model(*out->tokenizer, out->loaded.model->config().vocab);
      !e.empty()) {
    return fmt::format("tokenizer {}: {}", spec, e);
  }
  return "";
}

std::string open_eval_tokens(const std::string& model, const std::string& data_flag, bool all,
                             const data::Tokenizer& tokenizer, EvalTokens* out) {
  if (!data_flag.empty()) {
    const train::EvalSplit split = all ? train::EvalSplit::kAll : train::EvalSplit::kValidation;
    if (std::string e = train::load_eval_tokens(
            data_flag, tokenizer, data::data_paths_from_environment(), split, &out->owned);
        !e.empty()) {
      return e;
    }
    out->view = data::TokenView::of(out->owned);
    out->name = data_flag;
    return "";
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir =
      fs::is_directory(model, ec) ? fs::path(model) : fs::path(model).parent_path();
  const fs::path shard = dir / "data" / "val.bin";
  if (!fs::exists(shard, ec)) {
    return "--data is needed: the model is not in a training run's folder";
  }
  if (std::string e = data::open_shard(shard.string(), &out->shard); !e.empty()) return e;
  out->view = out->shard.tokens();
  out->name = shard.string();
  return "";
}

std::string eval_seq_len(int64_t flag, int64_t context, const char* whose, const EvalTokens& tokens,
                         int64_t* seq_len) {
  *seq_len = flag > 0 ? flag : std::min<int64_t>(context, 256);
  if (*seq_len > context) {
    return fmt::format("--seq-len {} is longer than {} context of {}", *seq_len, whose, context);
  }
  if (data::eval_window_count(tokens.view, *seq_len) == 0) {
    return fmt::format("{} holds {} tokens, too few for one window of {}", tokens.name,
                       tokens.view.size(), *seq_len + 1);
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

void add_packed_products_flag(CLI::App* cmd, bool* packed_products) {
  cmd->add_flag("--packed-products", *packed_products,
                "With --device cuda, multiply MX operands as codes and scales (block-scaled "
                "cuBLASLt on Blackwell; a dequantize pass on Hopper) instead of as bfloat16 "
                "values; the same operand bits");
}

void add_product_algorithms_option(CLI::App* cmd, std::string* path) {
  cmd->add_option("--product-algorithms", *path,
                  "With --device cuda, the cuBLASLt algorithm of each product listed in FILE "
                  "(written by mx bench train --tune-products on the same GPU and cuBLASLt) "
                  "instead of the heuristic's first; runs with the same file repeat bit for bit")
      ->check(CLI::ExistingFile)
      ->option_text("FILE");
}

}  // namespace mx::tools
