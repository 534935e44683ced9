// Reference tensor quantizer: float32 values -> MxTensor, and back. This is the definition the
// fast CPU and CUDA paths are tested against, bit for bit.
//
// Per block (see docs/NUMERICS.md for the reasons):
//   1. gather the block's values (padding slots are zero); flush subnormals if asked;
//   2. NaN or ±Inf anywhere -> scale 0xFF, every code zero; the block decodes to NaN;
//   3. asymmetric: m = bf16(fl32(max/2) + fl32(min/2)) over the block's real values;
//      the block quantizes d_i = fl32(v_i - m) instead of v_i;
//   4. amax = max |v_i|; amax == 0 -> scale byte spec.zero_block_scale, codes ±0;
//   5. e = shared_exponent_ref(amax); e > 127 -> NaN block; e < -127 -> e = -127;
//   6. code_i = encode_element_ref(v_i, e, rounding, stochastic_dither(seed, flat index)).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"

namespace mx {

struct BlockResult {
  uint8_t scale;
  uint16_t offset;  // bfloat16 bits; 0 unless asymmetric
  // Non-finite values or a scale past 2^127: every code is 0 and the block decodes to NaN.
  // (A zero block's scale byte may also be 0xFF, spec.zero_block_scale; its codes are ±0.)
  bool nan_block = false;
};

// Steps 1-5 for one block: its E8M0 scale (and bfloat16 offset) from its slots' values
// (`is_real` false for padding slots).
BlockResult choose_block_scale_ref(const QuantSpec& spec, std::span<const float> values,
                                   std::span<const bool> is_real);

// Step 6 for one real slot of a block whose scale and offset are `block`: the code of `value`
// (flushed if the spec says so, less the offset when asymmetric), `index` being its flat index
// (the stochastic-rounding stream position). `value` must be finite; a NaN block's codes are 0.
// Callers that choose a block's scale before its values are final (post-training quantization,
// mx/ptq) encode each slot with this.
uint8_t encode_block_element_ref(const QuantSpec& spec, const BlockResult& block, float value,
                                 int64_t index);

// Quantizes one block. `values` holds its slots (padding slots set to 0 and flagged false in
// `is_real`), `indices` the flat index of each slot (for stochastic rounding). Writes one code
// per slot into `codes`.
BlockResult quantize_block_ref(const QuantSpec& spec, std::span<const float> values,
                               std::span<const bool> is_real, std::span<const int64_t> indices,
                               std::span<uint8_t> codes);

// Quantizes a row-major float32 tensor. On a bad shape/spec, returns an empty tensor and sets
// `error`.
MxTensor quantize_ref(std::span<const float> values, std::span<const int64_t> shape,
                      const QuantSpec& spec, std::string* error);

// Decodes to float32 in the original shape: X * P (+ m), computed in float32, where the
// product is exact or overflows to ±Inf; NaN blocks decode to NaN.
std::vector<float> dequantize_ref(const MxTensor& t);

// Value of one decoded element given its block's scale and offset.
float decode_value(const FormatTraits& format, uint8_t code, uint8_t scale, bool asymmetric,
                   uint16_t offset);

}  // namespace mx
