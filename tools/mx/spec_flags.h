// The command-line flags that choose a QuantSpec, shared by every subcommand that quantizes:
//   --format NAME    any name parse_format accepts (default mxfp8_e4m3)
//   --block N        elements per 1-D block (default 32)
//   --axis A         axis the blocks run along, negative from the end (default -1)
//   --tile RxC       2-D tiles over the last two axes instead (excludes --block and --axis)
//   --scale RULE     floor | ceil | even | rceil (default floor)
//   --round MODE     nearest-even | nearest-away | toward-zero | stochastic (default nearest-even)
//   --seed S         stochastic rounding stream (default 0)
//   --asym           per-block bfloat16 offset
//   --flush-subnormals
//   --preset NAME    microxcaling | torchao | te: rounding, scale rule and zero-block scale of
//                    those libraries; an explicit --scale or --round still wins
//   --threads N      CPU threads, 0 for all (default 0)
// Values are parsed by the library (mx/core/spec_text.h) rather than by CLI11, so that every
// mistake gets a message naming the flag, in the subcommand's own "mx CMD: error: ..." form, and
// the Python module gives the same message for the same mistake.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "mx/core/quant_spec.h"
#include "mx/core/spec_text.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::tools {

struct SpecFlags : SpecText {
  std::string threads = "0";

  // Set by add_spec_flags; they tell a flag given explicitly from its default (null: not given).
  CLI::Option* format_option = nullptr;
  CLI::Option* block_option = nullptr;
  CLI::Option* axis_option = nullptr;
  CLI::Option* tile_option = nullptr;
  CLI::Option* scale_option = nullptr;
  CLI::Option* round_option = nullptr;
  // Every flag but --format, for a command where --format is what asks for a cast.
  std::vector<const CLI::Option*> options_besides_format;
};

// Adds the flags to `cmd`; `flags` must outlive the parse (commands keep theirs static).
void add_spec_flags(CLI::App* cmd, SpecFlags* flags);

// The spec the parsed flags describe, or a one-line reason naming the bad flag. Whether the
// spec fits a particular array (axis range, tile size) is checked by make_block_grid.
std::string build_spec(const SpecFlags& flags, QuantSpec* spec);

// For a command whose cast is optional, asked for by --format: a one-line reason naming the
// first other spec flag given without it (they would change nothing), or "".
std::string check_spec_flags_need_format(const SpecFlags& flags);

// The CPU options (--threads), or a one-line reason.
std::string build_cpu_options(const SpecFlags& flags, cpu::Options* options);

}  // namespace mx::tools
