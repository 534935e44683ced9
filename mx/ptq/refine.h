// Coordinate descent on GPTQ's objective, after GPTQ (CDQuant: Nair and Suggala 2024, arXiv
// 2406.17542). GPTQ settles each element once, greedily, in column order; here every element
// may move again to whichever value of its block's grid (scales and offsets as GPTQ chose them)
// lowers the layer's output error on the calibration inputs, sum over rows of
// (w - q)^T H (w - q), given all the other elements. The objective never rises, so the
// result is at least as close as GPTQ's by the measure GPTQ minimizes. docs/NUMERICS.md §17.
#pragma once

#include <cstdint>
#include <span>

#include "mx/core/block_grid.h"
#include "mx/core/quant_spec.h"
#include "mx/core/quantize_ref.h"

namespace mx::ptq {

// Refinement picks the best grid value outright, which is what a nearest rounding picks, not a
// truncation or a random draw (under H = I it must leave the direct cast as it is).
bool refinement_keeps(Rounding rounding);

// Refines the codes of w [n, k] (codes[b * block_elems + slot], grid's blocks, their scales in
// `blocks`) in `passes` sweeps over the input columns in natural order, one row at a time
// (rows are independent: H is shared). `hessian` [k, k] is the damped one that GPTQ used, in
// natural column order. `dequantized` [n, k] holds the values the codes decode to, and is kept
// so. Each element moves only where that lowers the objective by more than rounding could
// (ties keep the value it had).
void refine_codes(std::span<const float> w, int64_t n, int64_t k, std::span<const double> hessian,
                  const QuantSpec& spec, const BlockGrid& grid, std::span<const BlockResult> blocks,
                  std::span<uint8_t> codes, std::span<float> dequantized, int passes, int threads);

}  // namespace mx::ptq
