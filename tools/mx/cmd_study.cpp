// `mx study table RUN... -o DIR`: the MX paper's training table from finished run folders.
// `mx study errors MODEL --recipe R`: what a recipe's casts do to a trained model's operands.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "mx/nn/cast_probe.h"
#include "mx/train/cast_errors.h"
#include "mx/train/training_table.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct StudyTableFlags {
  std::vector<std::string> runs;
  std::string out;
  std::string baseline = "fp32";
  std::vector<std::string> also_baselines;
  bool json = false;
  bool no_plot = false;
  bool baseline_given = false;
};

// A baseline recipe asked for by name that no run used would only leave its gaps empty.
std::string check_baseline_ran(const std::vector<train::TableRun>& runs, const std::string& flag,
                               const std::string& recipe) {
  std::vector<std::string> used;
  for (const train::TableRun& r : runs) {
    if (r.recipe == recipe) return "";
    if (std::find(used.begin(), used.end(), r.recipe) == used.end()) used.push_back(r.recipe);
  }
  return fmt::format("{} {}: no run used that recipe (the runs used {})", flag, recipe,
                     fmt::join(used, ", "));
}

std::string run_study_table(const StudyTableFlags& f) {
  std::vector<train::TableRun> runs;
  if (std::string e = train::build_training_table(f.runs, f.baseline, &runs, f.also_baselines);
      !e.empty()) {
    return e;
  }
  if (f.baseline_given) {
    if (std::string e = check_baseline_ran(runs, "--baseline", f.baseline); !e.empty()) return e;
  }
  for (const std::string& recipe : f.also_baselines) {
    if (std::string e = check_baseline_ran(runs, "--also-baseline", recipe); !e.empty()) return e;
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

struct StudyErrorsFlags {
  std::string model, recipe = "mxfp6", data, split = "val", tokenizer, device = "cpu";
  int64_t batch = 4, seq_len = 0, batches = 1;
  int threads = 0;
  bool per_layer = false, json = false;
};

std::string run_study_errors(const StudyErrorsFlags& f) {
  nn::Recipe recipe;
  if (std::string e = nn::recipe_from_spec(f.recipe, &recipe); !e.empty()) return e;
  if (f.split != "val" && f.split != "all") return "--split must be val or all";
  nn::CastProbe* probe = nullptr;
  ModelSource source;
  if (std::string e =
          open_model_source(f.model, f.tokenizer, {f.device, f.threads}, recipe, &source,
                            [&probe, &f](std::unique_ptr<nn::Backend> inner) {
                              auto p = std::make_unique<nn::CastProbe>(std::move(inner), f.threads);
                              probe = p.get();
                              return std::unique_ptr<nn::Backend>(std::move(p));
                            });
      !e.empty()) {
    return e;
  }
  nn::Model& model = *source.loaded.model;
  EvalTokens tokens;
  if (std::string e =
          open_eval_tokens(f.model, f.data, f.split == "all", *source.tokenizer, &tokens);
      !e.empty()) {
    return e;
  }
  int64_t seq_len = 0;
  if (std::string e =
          eval_seq_len(f.seq_len, model.config().seq_len, "the model's", tokens, &seq_len);
      !e.empty()) {
    return e;
  }
  train::CastErrorReport report;
  if (std::string e = train::measure_cast_errors(model, *probe, recipe, tokens.view,
                                                 {f.batch, seq_len, f.batches, f.threads}, &report);
      !e.empty()) {
    return e;
  }
  const int n_layers = int(model.config().n_layers);
  if (f.json) {
    fmt::print("{}\n", train::cast_error_json(report, n_layers));
    return "";
  }
  fmt::print("Casts of {} on {} ({}): training passes over {} tokens of {}, loss {:.4f}\n\n",
             recipe.name == "custom" ? f.recipe : recipe.name, f.model, source.loaded.kind,
             report.tokens, tokens.name, report.loss);
  fmt::print("{}", train::cast_error_markdown(report, n_layers, f.per_layer));
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
  table->add_option("--also-baseline", f.also_baselines,
                    "A further recipe to give each run's gap to, in a column of its own "
                    "(repeatable)");
  table->add_flag("--json", f.json, "Print the table as JSON");
  table->add_flag("--no-plot", f.no_plot, "Write no loss.png (gnuplot draws it)");
  table->callback([table] {
    f.baseline_given = table->count("--baseline") > 0;
    run_command("study table", [] { return run_study_table(f); });
  });

  static StudyErrorsFlags e;
  CLI::App* errors = cmd->add_subcommand(
      "errors",
      "The error of a recipe's casts on a model's linear-layer operands, forward and backward, "
      "per product and role");
  errors->add_option("model", e.model, "A training run folder, a model .safetensors, or a .bin")
      ->required();
  errors->add_option("--recipe", e.recipe, "Recipe whose casts are measured")
      ->capture_default_str();
  errors->add_option("--data", e.data,
                     "Corpus whose validation split is used (default: the run's)");
  errors->add_option("--split", e.split, "val (held-out part of --data) or all")
      ->capture_default_str();
  errors->add_option("--tokenizer", e.tokenizer, "Tokenizer (default: the one the model names)");
  errors->add_option("--batch", e.batch, "Windows per pass")
      ->capture_default_str()
      ->check(integer_in(1));
  errors->add_option("--seq-len", e.seq_len, "Tokens per window (default: min(context, 256))")
      ->check(integer_in(1));
  errors->add_option("--batches", e.batches, "Training passes (forward and backward, no update)")
      ->capture_default_str()
      ->check(integer_in(1));
  errors->add_option("--device", e.device, "cpu or cuda")->capture_default_str();
  errors->add_option("--threads", e.threads, "CPU threads (0: all)")->check(thread_count());
  errors->add_flag("--per-layer", e.per_layer, "Also print every layer's products");
  errors->add_flag("--json", e.json, "Print every figure as JSON");
  errors->callback([] { run_command("study errors", [] { return run_study_errors(e); }); });
}

}  // namespace mx::tools
