// The spec's Dot and DotGeneral (OCP MX v1.0 §6) and a reference GEMM on MxTensors.
//
// Precision (implementation-defined by the spec; see docs/NUMERICS.md): the dot product of one
// block pair, X_A * X_B * sum_i P_i(A) * P_i(B), is computed exactly on integers and rounded
// once to float64; block results are summed in float64 in block order; the total is rounded
// once to float32. Any fast GEMM differs from this only by its accumulation order.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"

namespace mx {

// One block pair: codes of k elements each (unpacked), with their scales. NaN if either scale
// is NaN or any code is NaN; Inf codes give ±Inf or NaN as float arithmetic would.
double block_dot(const FormatTraits& fa, std::span<const uint8_t> codes_a, uint8_t scale_a,
                 const FormatTraits& fb, std::span<const uint8_t> codes_b, uint8_t scale_b);

// DotGeneral of two vectors quantized with 1-D blocks of equal size (formats may differ).
// Returns "" and sets *result, or a one-line reason.
std::string dot_general(const MxTensor& a, const MxTensor& b, float* result);

// C = A * B^T for A [M, K] and B [N, K], both blocked along K (their last axis), or
// C = A * B for B [K, N] blocked along K (axis 0). C is [M, N], row-major.
std::string gemm_ref(const MxTensor& a, const MxTensor& b, std::vector<float>* c);

}  // namespace mx
