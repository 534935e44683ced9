#include "mx/core/mx_tensor.h"

#include "mx/core/bitpack.h"

namespace mx {

MxTensor make_mx_tensor(std::span<const int64_t> shape, const QuantSpec& spec, std::string* error) {
  MxTensor t;
  const BlockGrid grid = make_block_grid(shape, spec, error);
  if (!error->empty()) return t;
  t.shape.assign(shape.begin(), shape.end());
  t.spec = spec;
  const int bits = traits(spec.format).bits;
  t.elements.assign(packed_bytes(grid.num_blocks() * grid.block_elems(), bits), 0);
  t.scales.assign(grid.num_blocks(), 0);
  if (spec.asymmetric) t.offsets.assign(grid.num_blocks(), 0);
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
  const int bits = traits(t.spec.format).bits;
  if (int64_t(t.scales.size()) != grid.num_blocks()) return "scale count does not match shape";
  if (int64_t(t.elements.size()) != packed_bytes(grid.num_blocks() * grid.block_elems(), bits)) {
    return "element byte count does not match shape";
  }
  const int64_t want_offsets = t.spec.asymmetric ? grid.num_blocks() : 0;
  if (int64_t(t.offsets.size()) != want_offsets) return "offset count does not match spec";
  return "";
}

}  // namespace mx
