#include "mx/core/layout_gpt_oss.h"

#include <algorithm>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"

namespace mx {

QuantSpec mxfp4_rowwise_spec() {
  QuantSpec spec;
  spec.format = ElementFormat::kE2M1;
  spec.block_size = 32;
  spec.axis = -1;
  return spec;
}

std::string check_mxfp4_rowwise(const MxTensor& t) {
  const QuantSpec& s = t.spec;
  if (s.format != ElementFormat::kE2M1) {
    return "MXFP4 layout needs E2M1 elements, got " + std::string(traits(s.format).name);
  }
  if (s.asymmetric) return "MXFP4 layout cannot store the offsets of an asymmetric tensor";
  if (s.is_tiled()) return "MXFP4 layout needs 1-D blocks along the last axis, not 2-D tiles";
  if (s.block_size != 32) {
    return "MXFP4 layout needs blocks of 32, got " + std::to_string(s.block_size);
  }
  const int ndim = static_cast<int>(t.shape.size());
  if (ndim == 0) return "MXFP4 layout needs a tensor of at least 1 dimension";
  if (s.axis != -1 && s.axis != ndim - 1) {
    return "MXFP4 layout needs blocks along the last axis, got axis " + std::to_string(s.axis);
  }
  if (t.shape.back() % 32 != 0) {
    return "MXFP4 layout needs a last dimension that is a multiple of 32, got " +
           std::to_string(t.shape.back());
  }
  return check_consistent(t);
}

GptOssMxfp4 to_gpt_oss(const MxTensor& t, std::string* error) {
  GptOssMxfp4 out;
  *error = check_mxfp4_rowwise(t);
  if (!error->empty()) return out;
  out.scales_shape = t.shape;
  out.scales_shape.back() /= 32;
  out.blocks_shape = out.scales_shape;
  out.blocks_shape.push_back(16);
  out.blocks = t.elements;
  out.scales = t.scales;
  return out;
}

MxTensor from_gpt_oss(const GptOssMxfp4& in, std::string* error) {
  error->clear();
  const std::vector<int64_t>& bs = in.blocks_shape;
  if (bs.size() < 2 || bs.back() != 16) {
    *error = "gpt-oss blocks shape must be [..., K/32, 16]";
    return {};
  }
  if (!std::equal(in.scales_shape.begin(), in.scales_shape.end(), bs.begin(), bs.end() - 1)) {
    *error = "gpt-oss scales shape must be the blocks shape without its last dimension";
    return {};
  }
  if (std::any_of(bs.begin(), bs.end(), [](int64_t d) { return d < 0; })) {
    *error = "negative dimension in gpt-oss shape";
    return {};
  }
  if (int64_t(in.blocks.size()) != element_count(bs) ||
      int64_t(in.scales.size()) != element_count(in.scales_shape)) {
    *error = "gpt-oss byte counts do not match their shapes";
    return {};
  }
  std::vector<int64_t> shape = in.scales_shape;
  shape.back() *= 32;
  MxTensor t = make_mx_tensor(shape, mxfp4_rowwise_spec(), error);
  if (!error->empty()) return {};
  t.elements = in.blocks;
  t.scales = in.scales;
  return t;
}

}  // namespace mx
