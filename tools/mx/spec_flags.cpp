#include "tools/mx/spec_flags.h"

#include <optional>
#include <string>
#include <string_view>

#include "mx/core/parse_number.h"

namespace mx::tools {
namespace {

constexpr int kMaxThreads = 1024;

bool given(const CLI::Option* option) {
  return option != nullptr && option->count() > 0;
}

}  // namespace

void add_spec_flags(CLI::App* cmd, SpecFlags* f) {
  f->format_option =
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
  const CLI::Option* seed = cmd->add_option("--seed", f->seed, "Seed of stochastic rounding")
                                ->type_name("S")
                                ->capture_default_str();
  const CLI::Option* asym =
      cmd->add_flag("--asym", f->asym, "Asymmetric: a bfloat16 offset per block");
  const CLI::Option* flush =
      cmd->add_flag("--flush-subnormals", f->flush_subnormals, "Treat subnormal inputs as zero");
  const CLI::Option* preset =
      cmd->add_option("--preset", f->preset,
                      "Defaults of microxcaling, torchao or te (explicit --scale/--round win)")
          ->type_name("NAME");
  const CLI::Option* threads = cmd->add_option("--threads", f->threads, "CPU threads (0: all)")
                                   ->type_name("N")
                                   ->capture_default_str();
  f->options_besides_format = {f->block_option, f->axis_option, f->tile_option, f->scale_option,
                               f->round_option, seed,           asym,           flush,
                               preset,          threads};
}

std::string build_spec(const SpecFlags& f, QuantSpec* spec) {
  SpecText text = f;
  text.block_given = given(f.block_option);
  text.axis_given = given(f.axis_option);
  text.tile_given = given(f.tile_option);
  text.scale_given = given(f.scale_option);
  text.round_given = given(f.round_option);
  return parse_spec_text(text, spec);
}

std::string check_spec_flags_need_format(const SpecFlags& f) {
  if (given(f.format_option)) return "";
  for (const CLI::Option* option : f.options_besides_format) {
    if (given(option)) return option->get_name() + " applies with --format only";
  }
  return "";
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
