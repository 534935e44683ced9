// `mx study table RUN... -o DIR`: the MX paper's training table from finished run folders.
#include <fmt/format.h>

#include "mx/train/training_table.h"
#include "tools/mx/commands.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct StudyTableFlags {
  std::vector<std::string> runs;
  std::string out;
  std::string baseline = "fp32";
  bool json = false;
  bool no_plot = false;
};

std::string run_study_table(const StudyTableFlags& f) {
  std::vector<train::TableRun> runs;
  if (std::string e = train::build_training_table(f.runs, f.baseline, &runs); !e.empty()) {
    return e;
  }
  if (!f.out.empty()) {
    if (std::string e = train::write_training_table(runs, f.out, !f.no_plot, f.baseline);
        !e.empty()) {
      return e;
    }
  }
  fmt::print("{}", f.json ? train::training_table_json(runs, f.baseline)
                          : train::training_table_markdown(runs, f.baseline));
  if (!f.out.empty() && !f.json) {
    fmt::print("\nwrote {0}/table.md, {0}/table.json{1}\n", f.out,
               f.no_plot ? "" : fmt::format(" and {}/loss.png", f.out));
  }
  return "";
}

}  // namespace

void register_study(CLI::App& app) {
  static StudyTableFlags f;
  CLI::App* cmd = app.add_subcommand("study", "Tables of finished experiments");
  cmd->require_subcommand(1);
  CLI::App* table = cmd->add_subcommand(
      "table",
      "The MX paper's training table: each run's final validation loss, its gap to the "
      "baseline run of the same model, and the paper's gap beside it");
  table->add_option("runs", f.runs, "Finished training run folders")->required();
  table->add_option("-o,--out", f.out, "Folder for table.md, table.json and loss.png");
  table->add_option("--baseline", f.baseline, "Recipe whose run each gap is taken to")
      ->capture_default_str();
  table->add_flag("--json", f.json, "Print the table as JSON");
  table->add_flag("--no-plot", f.no_plot, "Write no loss.png (gnuplot draws it)");
  table->callback([] { run_command("study table", [] { return run_study_table(f); }); });
}

}  // namespace mx::tools
