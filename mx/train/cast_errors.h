// The error of a recipe's casts on a model's linear-layer operands during training passes
// (nn::CastProbe): forward and backward over validation windows, no optimizer step, and the
// error of each role's cast per layer and product, and summed by product and by role.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mx/nn/cast_probe.h"
#include "mx/nn/model.h"
#include "mx/train/evaluate.h"

namespace mx::train {

// The name of a product site: q, k, v, attn_out, fc, up, proj, or classifier (layer n_layers).
// For Llama, fc is the gate projection.
std::string product_name(int layer, int site, int n_layers);

struct CastErrorReport {
  std::vector<nn::CastError> rows;     // per layer, product and role, in model order
  std::vector<nn::CastError> by_role;  // each role over every layer and product (layer, site -1)
  // each role at each product summed over the layers (layer -1); the classifier has its own
  std::vector<nn::CastError> by_product;
  double loss = 0;  // mean loss of the passes, under the recipe
  int64_t tokens = 0;
};

// `model` must run on `probe` (the backend it was built with). Runs a training forward and
// backward of each window batch under `recipe` and gathers the probe's records; the model's
// recipe and gradients are restored (zeroed) afterwards. "" or the reason a pass failed.
std::string measure_cast_errors(nn::Model& model, nn::CastProbe& probe, const nn::Recipe& recipe,
                                data::TokenView tokens, const EvalWindow& window,
                                CastErrorReport* out);

std::string cast_error_markdown(const CastErrorReport& report, int n_layers, bool per_layer);
std::string cast_error_json(const CastErrorReport& report, int n_layers);

}  // namespace mx::train
