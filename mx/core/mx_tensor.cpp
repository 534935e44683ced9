#include "mx/core/mx_tensor.h"

#include "mx/core/bitpack.h"

namespace mx {

MxStorageSizes storage_sizes(const BlockGrid& grid, const QuantSpec& spec) {
  const int64_t blocks = grid.num_blocks();
  return {packed_bytes(blocks * grid.block_elems(), traits(spec.format).bits), blocks,
          spec.asymmetric ? blocks : 0};
}

MxTensor make_mx_tensor(std::span<const int64_t> shape, const QuantSpec& spec, std::string* error) {
  MxTensor t;
  const BlockGrid grid = make_block_grid(shape, spec, error);
  if (!error->empty()) return t;
  t.shape.assign(shape.begin(), shape.end());
  t.spec = spec;
  const MxStorageSizes sizes = storage_sizes(grid, spec);
  t.elements.assign(sizes.element_bytes, 0);
  t.scales.assign(sizes.scale_bytes, 0);
  t.offsets.assign(sizes.offset_count, 0);
  return t;
}

double bits_per_element(const QuantSpec& spec) {
  const double per_block = 8.0 + (spec.asymmetric ? 16.0 : 0.0);
  return traits(spec.format).bits + per_block / spec.elements_per_block();
}

std::string check_consistent(const MxTensor& t) {
  std::string error;
  const BlockGrid grid = make_block_grid(t.shape, t.spec, &error);
  if (!error.empty()) return error;
  const MxStorageSizes sizes = storage_sizes(grid, t.spec);
  if (int64_t(t.scales.size()) != sizes.scale_bytes) return "scale count does not match shape";
  if (int64_t(t.elements.size()) != sizes.element_bytes) {
    return "element byte count does not match shape";
  }
  if (int64_t(t.offsets.size()) != sizes.offset_count) return "offset count does not match spec";
  return "";
}

std::vector<uint8_t> element_codes(const MxTensor& t, const BlockGrid& grid) {
  std::vector<uint8_t> codes(static_cast<size_t>(element_count(t.shape)));
  const int bits = traits(t.spec.format).bits;
  const int n = grid.block_elems();
  std::vector<uint8_t> block(static_cast<size_t>(n));
  std::vector<int64_t> index(static_cast<size_t>(n));
  for (int64_t b = 0; b < grid.num_blocks(); ++b) {
    unpack_codes(t.elements, bits, b * n, block);
    grid.block_indices(b, index.data());
    for (int s = 0; s < n; ++s) {
      if (index[s] >= 0) codes[size_t(index[s])] = block[s];
    }
  }
  return codes;
}

}  // namespace mx
