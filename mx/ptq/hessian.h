// The Hessian of a linear layer's squared output error, H = X^T X over its calibration inputs
// X [tokens, k], and its dampening before error diffusion (docs/NUMERICS.md §17).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace mx::ptq {

// h[k, k] += x^T x for the rows of x [rows, k] (FP32, summed in a fixed order per element).
void accumulate_hessian(float* h, const float* x, int64_t rows, int64_t k, int threads = 0);

// H, permuted into `order` (order[p] = the input column at position p), in double, with
// lambda = damp * mean(diag H) added to the diagonal. A dead input (diag 0: the feature was
// zero on every calibration token) gets 1 on the diagonal, which leaves its column's error
// where it is; an H that is all zero becomes I, under which diffusion is a direct cast.
std::vector<double> damped_hessian(std::span<const float> h, int64_t k,
                                   std::span<const int64_t> order, double damp);

}  // namespace mx::ptq
