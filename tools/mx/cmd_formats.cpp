// `mx formats`: the element-format trait table.
#include <fmt/format.h>

#include "mx/core/format.h"
#include "tools/mx/commands.h"

namespace mx::tools {
namespace {

std::string special_values(const FormatTraits& t) {
  if (t.has_inf) return "Inf, NaN";
  if (t.has_nan) return "NaN";
  return "-";
}

}  // namespace

void print_formats_table() {
  fmt::print("{:<12} {:<6} {:>4} {:>4} {:>4} {:>4} {:>5} {:>12} {:>10} {:>13} {:<8}\n", "MX format",
             "elem", "bits", "ebit", "mbit", "bias", "emax", "max normal", "min normal",
             "min subnormal", "special");
  for (const FormatTraits& t : all_formats()) {
    fmt::print("{:<12} {:<6} {:>4} {:>4} {:>4} {:>4} {:>5} {:>12g} {:>10g} {:>13g} {:<8}\n",
               t.mx_name, t.name, t.bits, t.is_integer ? "-" : fmt::format("{}", t.exp_bits),
               t.man_bits, t.is_integer ? "-" : fmt::format("{}", t.bias), t.emax, t.max_normal,
               t.min_normal, t.min_subnormal, special_values(t));
  }
  fmt::print(
      "\nScale: E8M0, bias 127, 2^-127..2^127, 0xFF = NaN. Block: 32 elements by default.\n");
  fmt::print("Integer formats: payload p means p / 2^(bits-2); mbit shows those fraction bits.\n");
}

void register_formats(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("formats", "Print the element formats and their traits");
  cmd->callback([] { print_formats_table(); });
}

}  // namespace mx::tools
