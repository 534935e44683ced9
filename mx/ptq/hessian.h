// The Hessian of a linear layer's squared output error, H = X^T X over its calibration inputs
// X [tokens, k], and its dampening before error diffusion (docs/NUMERICS.md §17).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mx::ptq {

// h[k, k] += x^T x for the rows of x [rows, k]: each element one FP32 chain of fused
// multiply-adds in row order (mx/kernels/cpu/sgemm.h), whatever the thread count. h must be
// symmetric on entry (it stays so, exactly).
void accumulate_hessian(float* h, const float* x, int64_t rows, int64_t k, int threads = 0);

// X^T X over inputs that arrive in batches of rows: each batch's product in FP32 (made by the
// model's backend, nn::Model::linear_input_gram; on the CPU it is accumulate_hessian from
// zero), the batches summed in double, so that many batches lose no more precision than one.
struct HessianSum {
  int64_t k = 0;
  std::vector<double> total;  // [k, k]
  std::vector<float> batch;   // scratch
};

HessianSum hessian_sum(int64_t k);  // zero
// Adds one batch's FP32 product X^T X [k, k].
void add_batch(HessianSum* h, const float* batch);
std::vector<float> hessian_value(const HessianSum& h);  // [k, k], rounded to FP32

// H, permuted into `order` (order[p] = the input column at position p), in double, with
// lambda = damp * mean(diag H) added to the diagonal. A dead input (diag 0: the feature was
// zero on every calibration token) gets 1 on the diagonal, which leaves its column's error
// where it is; an H that is all zero becomes I, under which diffusion is a direct cast.
std::vector<double> damped_hessian(std::span<const float> h, int64_t k,
                                   std::span<const int64_t> order, double damp);

}  // namespace mx::ptq
