// ggml's block_mxfp4 (GGUF tensor type 39): 17 bytes per 32 elements, the E8M0 scale byte first,
// then 16 bytes in which byte j holds element j in its low nibble and element j + 16 in its high
// nibble. Blocks follow each other row by row along the last (ggml: innermost) axis.
//
// The nibbles are E2M1 codes with the same bit meaning as ours (sign in bit 3); ggml keeps them
// as indices into a table of doubled values and halves the scale instead, which decodes the same.
// Decoding differs in two places, checked against ggml's own reader and to_float:
//   - scale byte 0xFF (a block holding NaN or Inf): we decode every element as NaN; ggml takes
//     the byte as the finite 2^127 and multiplies, so code 0 gives 0, ±0.5 gives ±2^127 and
//     larger codes give ±Inf;
//   - code 0x8 (-0): we decode -0.0, ggml's table +0.0.
// The conversion copies bytes and is unaffected.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"

namespace mx {

struct BlockMxfp4 {
  uint8_t e;       // E8M0 scale byte
  uint8_t qs[16];  // qs[j]: element j low nibble, element j + 16 high nibble
};
static_assert(sizeof(BlockMxfp4) == 17, "block_mxfp4 is 17 bytes with no padding");

// The ggml blocks of `t`, which must pass check_mxfp4_rowwise (layout_gpt_oss.h); else an empty
// vector and a reason in `error`.
std::vector<BlockMxfp4> to_ggml_mxfp4(const MxTensor& t, std::string* error);

// The same blocks as raw bytes, 17 per block, as they lie in a GGUF file.
std::vector<uint8_t> to_ggml_mxfp4_bytes(const MxTensor& t, std::string* error);

// The MxTensor of `shape` (last dimension a multiple of 32) stored in `blocks`, with spec
// mxfp4_rowwise_spec(); a reason in `error` when the block count does not fit the shape.
MxTensor from_ggml_mxfp4(std::span<const BlockMxfp4> blocks, std::span<const int64_t> shape,
                         std::string* error);

// As above from raw bytes; their count must be 17 per block.
MxTensor from_ggml_mxfp4_bytes(std::span<const uint8_t> bytes, std::span<const int64_t> shape,
                               std::string* error);

}  // namespace mx
