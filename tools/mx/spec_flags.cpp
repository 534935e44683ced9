#include "tools/mx/spec_flags.h"

#include <charconv>
#include <optional>
#include <string>
#include <string_view>

namespace mx::tools {
namespace {

constexpr int kMaxThreads = 1024;

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

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

bool given(const CLI::Option* option) {
  return option != nullptr && option->count() > 0;
}

}  // namespace

void add_spec_flags(CLI::App* cmd, SpecFlags* f) {
  cmd->add_option("--format", f->format, "Element format, e.g. mxfp8_e4m3, mxfp4_e2m1, mxint8")
      ->type_name("NAME")
      ->capture_default_str();
  f->block_option = cmd->add_option("--block", f->block, "Elements per block")
                        ->type_name("N")
                        ->capture_default_str();
  f->axis_option = cmd->add_option("--axis", f->axis, "Axis of the blocks (negative: from the end)")
                       ->type_name("A")
                       ->capture_default_str();
  f->tile_option = cmd->add_option("--tile", f->tile, "2-D tiles over the last two axes, e.g. 4x4")
                       ->type_name("RxC");
  f->scale_option = cmd->add_option("--scale", f->scale, "Scale rule: floor, ceil, even, rceil")
                        ->type_name("RULE")
                        ->capture_default_str();
  f->round_option = cmd->add_option("--round", f->round,
                                    "Rounding: nearest-even, nearest-away, toward-zero, stochastic")
                        ->type_name("MODE")
                        ->capture_default_str();
  cmd->add_option("--seed", f->seed, "Seed of stochastic rounding")
      ->type_name("S")
      ->capture_default_str();
  cmd->add_flag("--asym", f->asym, "Asymmetric: a bfloat16 offset per block");
  cmd->add_flag("--flush-subnormals", f->flush_subnormals, "Treat subnormal inputs as zero");
  cmd->add_option("--preset", f->preset,
                  "Defaults of microxcaling, torchao or te (explicit --scale/--round win)")
      ->type_name("NAME");
  cmd->add_option("--threads", f->threads, "CPU threads (0: all)")
      ->type_name("N")
      ->capture_default_str();
}

std::string build_spec(const SpecFlags& f, QuantSpec* spec) {
  const std::optional<ElementFormat> format = parse_format(f.format);
  if (!format) return "unknown --format '" + f.format + "' (known: " + known_formats() + ")";
  if (f.preset.empty()) {
    *spec = QuantSpec{};
    spec->format = *format;
  } else if (f.preset == "microxcaling") {
    *spec = microxcaling_preset(*format);
  } else if (f.preset == "torchao" || f.preset == "te") {
    *spec = rceil_preset(*format);
  } else {
    return "unknown --preset '" + f.preset + "' (expected microxcaling, torchao or te)";
  }

  if (given(f.tile_option) || !f.tile.empty()) {
    if (given(f.block_option) || given(f.axis_option)) {
      return "--tile cannot be combined with --block or --axis";
    }
    if (std::string e = parse_tile(f.tile, spec); !e.empty()) return e;
  } else {
    const auto block = parse_number<int>(f.block);
    if (!block || *block <= 0) return "bad --block '" + f.block + "' (expected a positive integer)";
    const auto axis = parse_number<int>(f.axis);
    if (!axis) return "bad --axis '" + f.axis + "' (expected an integer)";
    spec->block_size = *block;
    spec->axis = *axis;
  }

  const std::optional<ScaleRule> scale = parse_scale_rule(f.scale);
  if (!scale) return "unknown --scale '" + f.scale + "' (expected floor, ceil, even or rceil)";
  if (given(f.scale_option) || f.preset.empty()) spec->scale_rule = *scale;
  const std::optional<Rounding> round = parse_rounding(f.round);
  if (!round) {
    return "unknown --round '" + f.round +
           "' (expected nearest-even, nearest-away, toward-zero or stochastic)";
  }
  if (given(f.round_option) || f.preset.empty()) spec->rounding = *round;

  const auto seed = parse_number<uint64_t>(f.seed);
  if (!seed) return "bad --seed '" + f.seed + "' (expected a non-negative integer)";
  spec->seed = *seed;
  spec->asymmetric = f.asym;
  spec->flush_subnormals = f.flush_subnormals;
  return validate(*spec);
}

std::string build_cpu_options(const SpecFlags& f, cpu::Options* options) {
  const auto threads = parse_number<int>(f.threads);
  // Bounded because each thread is real: a typo like 100000 should not exhaust the process.
  if (!threads || *threads < 0 || *threads > kMaxThreads) {
    return "bad --threads '" + f.threads + "' (expected 0 for all, or 1 to " +
           std::to_string(kMaxThreads) + ")";
  }
  options->threads = *threads;
  return "";
}

}  // namespace mx::tools
