// `mx plot RUN... -o loss.png`: the loss curves of several training runs in one PNG.
#include <fmt/format.h>

#include "mx/io/atomic_file.h"
#include "mx/train/loss_plot.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct PlotFlags {
  std::vector<std::string> runs;
  std::string out = "loss.png";
  train::LossPlotOptions options;
};

std::string run_plot(const PlotFlags& f) {
  if (std::string e = io::check_output_file(f.out); !e.empty()) return e;
  std::vector<train::RunCurve> curves;
  for (const std::string& dir : f.runs) curves.push_back({train::run_label(dir), dir});
  if (std::string e = train::plot_loss_curves(curves, f.out, f.options); !e.empty()) return e;
  fmt::print("wrote {}\n", f.out);
  return "";
}

}  // namespace

void register_plot(CLI::App& app) {
  static PlotFlags f;
  CLI::App* cmd = app.add_subcommand("plot", "Draw the loss curves of training runs into a PNG");
  cmd->add_option("runs", f.runs, "Run folders (each holds log.csv)")->required();
  cmd->add_option("-o,--out", f.out, "PNG to write")->capture_default_str();
  cmd->add_option("--title", f.options.title, "Plot title")->capture_default_str();
  cmd->add_flag("--validation-only", f.options.validation_only,
                "Draw only the validation passes, a line per run (for many runs)");
  cmd->add_option("--from-step", f.options.from_step,
                  "Leave out the steps before this one (the first steps' high loss squeezes the "
                  "rest)")
      ->check(integer_in(0));
  cmd->callback([] { run_command("plot", [] { return run_plot(f); }); });
}

}  // namespace mx::tools
