// `mx demo`: the main job. A short tour: the format table, then every format under each of the
// four scale rules on synthetic tensors, with RMSE, SQNR and bits per element.
#include <fmt/format.h>

#include <map>

#include "mx/core/format.h"
#include "mx/study/synthetic.h"
#include "tools/mx/commands.h"

namespace mx::tools {
namespace {

struct DemoOptions {
  int64_t count = 1 << 20;
  uint64_t seed = 1;
  int threads = 0;
};

constexpr ScaleRule kRules[] = {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven,
                                ScaleRule::kRceil};

void print_distribution(study::Distribution d, const DemoOptions& o) {
  const std::vector<float> values = study::synthetic_tensor(d, o.count, o.seed);
  const std::vector<study::ComparisonCell> cells = study::compare_formats(values, {}, o.threads);
  fmt::print("\n{} ({} values, 1x32 blocks, nearest-even)\n", study::distribution_name(d), o.count);
  fmt::print("  {:<12} {:>9}", "format", "bits/elem");
  for (ScaleRule r : kRules)
    fmt::print("  {:>20}", fmt::format("{} SQNR dB (RMSE)", scale_rule_name(r)));
  fmt::print("  {}\n", "best");
  std::map<ElementFormat, std::vector<const study::ComparisonCell*>> by_format;
  for (const auto& c : cells) by_format[c.spec.format].push_back(&c);
  for (const auto& [format, row] : by_format) {
    fmt::print("  {:<12} {:>9.2f}", traits(format).mx_name, row.front()->bits_per_element);
    const study::ComparisonCell* best = row.front();
    for (const study::ComparisonCell* c : row) {
      fmt::print("  {:>20}", fmt::format("{:6.2f} ({:.2e})", c->error.sqnr_db, c->error.rmse));
      if (c->error.sqnr_db > best->error.sqnr_db) best = c;
    }
    fmt::print("  {}\n", scale_rule_name(best->spec.scale_rule));
  }
}

void run_demo(const DemoOptions& o) {
  fmt::print("mxkit: OCP Microscaling formats\n\n");
  print_formats_table();
  fmt::print("\nQuantizing synthetic tensors with every format under each scale rule.\n");
  fmt::print("SQNR = 10 log10(signal power / error power); higher is better. Bits per element\n");
  fmt::print("include the shared 8-bit scale of each 32-element block (+0.25).\n");
  for (study::Distribution d : {study::Distribution::kGaussian, study::Distribution::kHeavyTailed,
                                study::Distribution::kUniform}) {
    print_distribution(d, o);
  }
}

}  // namespace

void register_demo(CLI::App& app) {
  static DemoOptions options;
  CLI::App* cmd = app.add_subcommand(
      "demo", "A short tour: formats, then every format x scale rule on synthetic tensors");
  cmd->add_option("--count", options.count, "Values per synthetic tensor")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 28));
  cmd->add_option("--seed", options.seed, "Seed of the synthetic tensors");
  cmd->add_option("--threads", options.threads, "Threads (0: all)")->check(CLI::NonNegativeNumber);
  cmd->callback([] { run_demo(options); });
}

}  // namespace mx::tools
