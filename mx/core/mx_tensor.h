// MxTensor: a quantized tensor. Element codes are stored block after block (block-major, in
// the BlockGrid's order), each block holding all its slots, padding included, packed as a
// little-endian bit stream (see bitpack.h). Scales are one E8M0 byte per block.
//
// For row-wise blocks of 32 over [..., N, K] with K a multiple of 32 this is exactly the
// gpt-oss layout: elements [..., N, K/32, 32 * bits / 8], scales [..., N, K/32].
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "mx/core/block_grid.h"
#include "mx/core/quant_spec.h"

namespace mx {

struct MxTensor {
  std::vector<int64_t> shape;  // logical shape of the original tensor
  QuantSpec spec;
  std::vector<uint8_t> elements;  // packed codes, block-major
  std::vector<uint8_t> scales;    // E8M0, one per block
  std::vector<uint16_t> offsets;  // bfloat16 per block, asymmetric specs only

  int64_t num_blocks() const { return static_cast<int64_t>(scales.size()); }
};

// Byte counts of an MxTensor's three vectors for a shape and spec.
struct MxStorageSizes {
  int64_t element_bytes = 0;
  int64_t scale_bytes = 0;
  int64_t offset_count = 0;
};
MxStorageSizes storage_sizes(const BlockGrid& grid, const QuantSpec& spec);

// An MxTensor of the right sizes for `shape` and `spec`, zero-filled, or a reason in `error`.
MxTensor make_mx_tensor(std::span<const int64_t> shape, const QuantSpec& spec, std::string* error);

// Bits of storage per element including scale (and offset) overhead, for full blocks.
double bits_per_element(const QuantSpec& spec);

// Empty when the byte vectors have the sizes the shape and spec require.
std::string check_consistent(const MxTensor& t);

// The unpacked codes: one byte per element at the element's own row-major position in t.shape
// (padding slots dropped). `grid` is make_block_grid(t.shape, t.spec), which the caller has.
std::vector<uint8_t> element_codes(const MxTensor& t, const BlockGrid& grid);

}  // namespace mx
