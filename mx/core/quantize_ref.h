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
};

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
