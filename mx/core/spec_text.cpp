#include "mx/core/spec_text.h"

#include <optional>
#include <string>
#include <string_view>

#include "mx/core/parse_number.h"

namespace mx {
namespace {

std::string known_formats() {
  std::string s;
  for (const FormatTraits& t : all_formats()) s += (s.empty() ? "" : ", ") + std::string(t.mx_name);
  return s;
}

// "RxC" with both sides positive integers.
std::string parse_tile(const std::string& text, QuantSpec* spec) {
  const size_t x = text.find('x');
  const std::string bad = "bad --tile '" + text + "' (expected RxC with positive sizes, e.g. 4x4)";
  if (x == std::string::npos) return bad;
  const auto rows = parse_number<int>(std::string_view(text).substr(0, x));
  const auto cols = parse_number<int>(std::string_view(text).substr(x + 1));
  if (!rows || !cols || *rows <= 0 || *cols <= 0) return bad;
  spec->tile_rows = *rows;
  spec->tile_cols = *cols;
  return "";
}

}  // namespace

std::string parse_spec_text(const SpecText& t, QuantSpec* spec) {
  const std::optional<ElementFormat> format = parse_format(t.format);
  if (!format) return "unknown --format '" + t.format + "' (known: " + known_formats() + ")";
  if (t.preset.empty()) {
    *spec = QuantSpec{};
    spec->format = *format;
  } else if (t.preset == "microxcaling") {
    *spec = microxcaling_preset(*format);
  } else if (t.preset == "torchao" || t.preset == "te") {
    *spec = rceil_preset(*format);
  } else {
    return "unknown --preset '" + t.preset + "' (expected microxcaling, torchao or te)";
  }

  if (t.tile_given || !t.tile.empty()) {
    if (t.block_given || t.axis_given) return "--tile cannot be combined with --block or --axis";
    if (std::string e = parse_tile(t.tile, spec); !e.empty()) return e;
  } else {
    const auto block = parse_number<int>(t.block);
    if (!block || *block <= 0) return "bad --block '" + t.block + "' (expected a positive integer)";
    const auto axis = parse_number<int>(t.axis);
    if (!axis) return "bad --axis '" + t.axis + "' (expected an integer)";
    spec->block_size = *block;
    spec->axis = *axis;
  }

  const std::optional<ScaleRule> scale = parse_scale_rule(t.scale);
  if (!scale) return "unknown --scale '" + t.scale + "' (expected floor, ceil, even or rceil)";
  if (t.scale_given || t.preset.empty()) spec->scale_rule = *scale;
  const std::optional<Rounding> round = parse_rounding(t.round);
  if (!round) {
    return "unknown --round '" + t.round +
           "' (expected nearest-even, nearest-away, toward-zero or stochastic)";
  }
  if (t.round_given || t.preset.empty()) spec->rounding = *round;

  const auto seed = parse_number<uint64_t>(t.seed);
  if (!seed) return "bad --seed '" + t.seed + "' (expected a non-negative integer)";
  spec->seed = *seed;
  spec->asymmetric = t.asym;
  spec->flush_subnormals = t.flush_subnormals;
  return validate(*spec);
}

}  // namespace mx
