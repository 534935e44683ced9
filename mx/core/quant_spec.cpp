#include "mx/core/quant_spec.h"

#include <string>

namespace mx {

QuantSpec microxcaling_preset(ElementFormat format) {
  QuantSpec spec;
  spec.format = format;
  spec.rounding = Rounding::kNearestAway;
  spec.zero_block_scale = format == ElementFormat::kInt8 ? 1 : 0;
  return spec;
}

QuantSpec rceil_preset(ElementFormat format) {
  QuantSpec spec;
  spec.format = format;
  spec.scale_rule = ScaleRule::kRceil;
  return spec;
}

std::string validate(const QuantSpec& spec) {
  if (spec.tile_rows != 0 || spec.tile_cols != 0) {
    if (spec.tile_rows <= 0 || spec.tile_cols <= 0) return "tile sizes must both be positive";
    if (int64_t{spec.tile_rows} * spec.tile_cols > (1 << 20)) return "tile too large";
    return "";
  }
  if (spec.block_size <= 0) return "block size must be positive";
  if (spec.block_size > (1 << 20)) return "block size too large (max 1048576)";
  return "";
}

std::string describe(const QuantSpec& spec) {
  std::string s(traits(spec.format).mx_name);
  if (spec.is_tiled()) {
    s += " tile=" + std::to_string(spec.tile_rows) + "x" + std::to_string(spec.tile_cols);
  } else {
    s += " block=" + std::to_string(spec.block_size) + " axis=" + std::to_string(spec.axis);
  }
  s += " scale=" + std::string(scale_rule_name(spec.scale_rule));
  s += " round=" + std::string(rounding_name(spec.rounding));
  if (spec.rounding == Rounding::kStochastic) s += " seed=" + std::to_string(spec.seed);
  if (spec.asymmetric) s += " asym";
  if (spec.flush_subnormals) s += " flush-subnormals";
  if (spec.zero_block_scale != 0) {
    s += " zero-block-scale=" + std::to_string(spec.zero_block_scale);
  }
  return s;
}

}  // namespace mx
