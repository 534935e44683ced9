// PTQ toward the FP32 model's outputs (docs/NUMERICS.md §17). GPTQ fits a layer's quantized
// weight Ŵ so that X Ŵᵀ matches X Wᵀ over X, the inputs the layer receives from the layers
// before it, already quantized. Those inputs differ from X̃, the FP32 model's own inputs to the
// layer, and the FP32 model computes X̃ Wᵀ. The unconstrained least-squares fit of X W'ᵀ to
// X̃ Wᵀ is W' = W + W ΔXᵀX H⁻¹ (ΔX = X̃ - X, H = XᵀX). GPTAQ (Li et al., "Efficient
// Finetuning-Free Quantization for Asymmetric Calibration", arXiv 2504.02692) folds that target
// into GPTQ's column loop; here it is applied once, before the loop, which then quantizes W'
// against H as usual.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mx::ptq {

// ΔXᵀX over inputs that arrive in batches of rows, each batch's product in FP32 (made by the
// model's backend, nn::Model::linear_input_product, or on the host by add_cross_batch), the
// batches summed in double (as HessianSum).
struct CrossSum {
  int64_t k = 0;
  std::vector<double> total;  // [k, k], row i: sum over tokens of ΔX[t, i] X[t, j]
  std::vector<float> delta, batch;
};

CrossSum cross_sum(int64_t k);
// delta [rows, k] := fp_inputs - inputs, the same rows of the FP32 model's and the quantized
// model's inputs to the layer.
void input_difference(const float* fp_inputs, const float* inputs, int64_t rows, int64_t k,
                      std::vector<float>* delta);
// Adds one batch's FP32 product ΔXᵀX [k, k].
void add_cross_product(CrossSum* sum, const float* batch);
// Both on the host: the batch's ΔXᵀX by mx::cpu::sgemm, then added.
void add_cross_batch(CrossSum* sum, const float* fp_inputs, const float* inputs, int64_t rows,
                     int threads = 0);

// The correction's parts for one input, which the weights reading it (q, k and v; gate and up)
// share: C = ΔXᵀX, and U with UᵀU = Hd⁻¹, Hd = H dampened as GPTQ's (hessian.h:
// damped_hessian, natural order), factored once.
struct Fp32Correction {
  int64_t k = 0;
  std::vector<double> cross, u, ut;  // [k, k] each; ut = Uᵀ
};

// Returns "" or why Hd cannot be factored.
std::string prepare_fp32_correction(std::span<const float> h, CrossSum&& cross, double damp,
                                    int threads, Fp32Correction* out);

// w [n, k] += weight * (w C) Hd⁻¹ = weight * ((w C) Uᵀ) U. weight 1 is the whole correction,
// 0 none (w untouched).
void correct_toward_fp32_outputs(std::span<float> w, int64_t n, const Fp32Correction& c,
                                 double weight, int threads = 0);

}  // namespace mx::ptq
