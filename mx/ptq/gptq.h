// Post-training quantization of one linear weight by error diffusion (GPTQ: Frantar et al.,
// 2023), for every MX QuantSpec. docs/NUMERICS.md §17 states the algorithm and its choices.
//
// W [n, k] (row = output feature, k = input features) is quantized one input column at a time
// in the chosen order. Each column's rounding error, divided by the diagonal of U (U^T U =
// H^-1, cholesky.h), is subtracted, scaled by U's row, from the columns not yet quantized:
// the least-squares correction of the layer's output on the calibration inputs whose Hessian
// is H. An MX block's scale (and offset) is chosen when its first column in the order is
// reached, from the block's values at that moment, by the reference rule
// (choose_block_scale_ref); each element is then encoded with that scale when its own column
// comes (encode_block_element_ref). The result is an MxTensor like any other.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"
#include "mx/ptq/column_order.h"

namespace mx::ptq {

// How a block's scale is chosen when its first column comes (docs/NUMERICS.md §17).
enum class ScaleChoice {
  kRule,       // the spec's scale rule, from the block's current values
  kNeighbors,  // of the rule's E8M0 scale and the powers of two right below and above it,
               // the one under which the block's current values have the least squared error,
               // each element's weighted by diag(H) of its input; ties keep the rule's
  kLookahead,  // of the same three, the one under which quantizing the block column by column,
               // each column's error passed on to the block's later columns, adds the least to
               // GPTQ's objective; ties keep the rule's
};

struct GptqOptions {
  double damp = 0.01;  // lambda = damp * mean(diag H), added to H's diagonal
  ColumnOrder order = ColumnOrder::kNatural;
  ScaleChoice scale = ScaleChoice::kRule;
  // Columns whose updates to the rest are applied together (a matrix product): the lazy
  // batches of GPTQ. They change only the order of float sums, never which values a block's
  // scale sees: a batch ends early where a block's scale is due and some of its columns lie
  // beyond the batch.
  int64_t batch_columns = 128;
  // Sweeps of coordinate descent over the codes after GPTQ (refine.h); 0: none.
  int refine_passes = 0;
  int threads = 0;  // 0: all hardware threads; results are the same for any count
};

// Quantizes w [n, k] (row-major FP32, finite) with `spec` (1-D blocks along either axis, or
// tiles), given hessian [k, k] = X^T X (any positive multiple of it gives the same result up
// to rounding). Fills *out with shape {n, k}; with `dequantized`, also the values the stored
// tensor decodes to (row-major [n, k]). Returns "" or a one-line reason.
std::string gptq_quantize(std::span<const float> w, int64_t n, int64_t k,
                          std::span<const float> hessian, const QuantSpec& spec,
                          const GptqOptions& options, MxTensor* out,
                          std::vector<float>* dequantized = nullptr);

}  // namespace mx::ptq
