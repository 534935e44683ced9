// Post-training quantization of a whole model by error diffusion (gptq.h): each linear layer's
// weight, in model order, quantized against the Hessian of the inputs it receives when the
// layers before it are already quantized. docs/NUMERICS.md §17.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"
#include "mx/nn/model.h"
#include "mx/nn/recipe.h"
#include "mx/ptq/gptq.h"

namespace mx::ptq {

struct ModelPtqOptions {
  QuantSpec spec;  // the weights' format; blocks along the input features as a rule
  GptqOptions gptq;
  // The activation casts the model runs with while the Hessians are collected (the recipe's
  // act_fwd and attention casts, as mx eval applies them); its weight cast is not used: the
  // layers already done hold their quantized values, the others their FP32 ones.
  nn::Recipe recipe;
  int64_t batch = 8;  // calibration sequences per pass
  // With a second copy of the model (the same weights, on any backend), left unquantized: each
  // layer is fitted to that model's outputs on its own inputs (fp32_targets.h), the correction
  // scaled by fp32_target_weight (in (0, 1]). The recipe must then cast no activations.
  nn::Model* fp32_model = nullptr;
  double fp32_target_weight = 1.0;
};

// Called after each weight with the count done, the total and the weight's name.
using PtqProgress = std::function<void(int64_t done, int64_t total, std::string_view name)>;

// Quantizes every linear weight of the blocks (not the embedding or the classifier) of `model`
// (on a backend with FP32 activations), given `sequences` calibration sequences of `seq_len`
// tokens each, row after row in `tokens`. Fills *out with the MX tensors by parameter name and
// leaves their decoded values in model.params() (uploaded), so the model then runs as stored.
// The blocks run one step at a time (nn::BlockStep) over every sequence, so that each part of
// the forward pass runs once per block; the residual stream and the step's intermediate are
// kept on the host (sequences * seq_len * (dim + max(dim, hidden)) floats, twice that with an
// fp32_model). Returns "" or a one-line reason.
std::string quantize_model(nn::Model& model, std::span<const uint32_t> tokens, int64_t sequences,
                           int64_t seq_len, const ModelPtqOptions& options,
                           const PtqProgress& progress, std::map<std::string, MxTensor>* out);

}  // namespace mx::ptq
