#include "mx/nn/cast_streams.h"

#include "mx/core/rounding.h"

namespace mx::nn {

uint64_t stream_id(uint64_t step, int layer, int site) {
  return splitmix64_mix((step << 24) ^ (uint64_t(layer) << 8) ^ uint64_t(site));
}

uint64_t operand_stream(uint64_t stream, LinearOperand operand) {
  return splitmix64_mix(stream * 8 + uint64_t(operand));
}

uint64_t operand_stream(uint64_t stream, AttnOperand operand) {
  return splitmix64_mix(stream ^ (0xA77E000000000000ull + uint64_t(operand)));
}

QuantSpec cast_spec(const QuantSpec& role, int axis, uint64_t stream) {
  QuantSpec spec = role;
  spec.axis = axis;
  spec.seed = splitmix64_mix(spec.seed ^ stream);
  return spec;
}

}  // namespace mx::nn
