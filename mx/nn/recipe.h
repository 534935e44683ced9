// An MX training recipe: how each operand of each GEMM is quantized, forward and backward.
//
// For a linear layer y = x W^T (x [tokens, in], W [out, in]) there are three GEMMs, and each
// of their inputs is quantized along that GEMM's reduction axis, from the FP32 master copies
// (Rouhani et al. 2023; microxcaling's linear layer):
//
//   GEMM               operand  role                 blocks along
//   y  = x W^T         x        act_fwd              in-features  (axis -1 of x)
//                      W        weight_fwd           in-features  (axis -1 of W)
//   dx = dy W          dy       grad_out_dx          out-features (axis -1 of dy)
//                      W        weight_dx            out-features (axis  0 of W)
//   dW = dy^T x        dy       grad_out_dw          tokens       (axis  0 of dy)
//                      x        act_dw               tokens       (axis  0 of x)
//
// The attention matmuls (Q K^T and P V) quantize both inputs with act_fwd forward and act_dw /
// grad_out_* backward, each along its own reduction axis. The axis field of a role's spec is
// set by the matmul entry point from the table above; everything else in it is used as given.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mx/core/quant_spec.h"

namespace mx::nn {

// A transform of each MX block before its cast, undone after it (block_rotation.h).
enum class BlockRotation : uint8_t { kNone, kHadamard };

// How one GEMM operand is cast before the FP32 matrix product.
struct OperandCast {
  enum class Kind { kNone, kBF16, kMx };
  Kind kind = Kind::kNone;
  QuantSpec spec;                                 // kMx only
  BlockRotation rotation = BlockRotation::kNone;  // kMx only; blocks of a power-of-two size

  static OperandCast none() { return {}; }
  static OperandCast bf16() { return {Kind::kBF16, {}}; }
  static OperandCast mx(const QuantSpec& s) { return {Kind::kMx, s}; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_rotated() const { return kind == Kind::kMx && rotation != BlockRotation::kNone; }
  friend bool operator==(const OperandCast&, const OperandCast&) = default;
};

struct Recipe {
  std::string name = "fp32";
  OperandCast weight_fwd, act_fwd;
  OperandCast grad_out_dx, weight_dx;
  OperandCast grad_out_dw, act_dw;
  // Round the outputs of element-wise "vector ops" (norms, softmax, activations, residual adds)
  // to bfloat16, as the paper's runs did.
  bool bf16_vector_ops = false;
  // The classifier's products (logits = h E^T and its two gradients) cast to bfloat16 wherever
  // the recipe casts to MX, its other casts as given: the output layer kept at higher
  // precision, as low-precision training recipes often do. Its gradient (softmax - onehot) is
  // mostly values far below each block's largest, which narrow MX formats flush to zero.
  bool bf16_classifier = false;
  // Attention's two products (Q K^T and P V, forward and backward) cast to bfloat16 wherever the
  // recipe casts to MX, the linear layers' casts as given: attention left in bfloat16.
  bool bf16_attention = false;
};

// fp32, tf32 (fp32 whose GPU products run on TF32 tensor cores), bf16, mxint8, mxfp8, mxfp6,
// mxfp4w-mxfp6a, mxfp4 (see docs/NUMERICS.md).
std::vector<std::string_view> recipe_preset_names();
std::optional<Recipe> recipe_preset(std::string_view name);

// The forward-only casts of a recipe (weights and activations), for direct-cast evaluation:
// the backward roles are cleared.
Recipe forward_only(const Recipe& recipe);

// The forward casts of a recipe for quantization-aware training (mx train
// --forward-casts-only): the backward's products uncast (float32) where the activations are
// float32, bfloat16 (as the bf16 recipe's) where the backend keeps bfloat16 activations. There
// the gradients are bfloat16 already, and an uncast P or dS would take attention's backward
// off the tensor cores. Named "R-forward" unless nothing changed (fp32 stays fp32).
Recipe forward_casts_for_training(const Recipe& recipe, bool bf16_activations);

// True when some role of `recipe` rotates its blocks before its cast.
bool has_block_rotation(const Recipe& recipe);

// The casts of the classifier's products under `recipe` (bf16_classifier above).
Recipe classifier_recipe(const Recipe& recipe);
// The casts of attention's products under `recipe` (bf16_attention above).
Recipe attention_recipe(const Recipe& recipe);

// Parses a recipe from JSON text (see docs/NUMERICS.md for the schema). Returns "" or a reason.
std::string parse_recipe_json(std::string_view json_text, Recipe* out);

// A preset name, JSON text (is_recipe_json_text), else the path of a JSON recipe file.
std::string recipe_from_spec(std::string_view spec, Recipe* out);
// Whether `spec` is JSON text rather than a name or a path: its first character after any
// white space is an opening brace.
bool is_recipe_json_text(std::string_view spec);

// JSON that parse_recipe_json reads back into the same recipe (every role written out).
std::string recipe_to_json(const Recipe& recipe);

std::string describe(const Recipe& recipe);

}  // namespace mx::nn
