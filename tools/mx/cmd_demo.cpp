// `mx demo`: the main job, the MX paper in small (mx/train/small_paper.h): a tiny GPT trained
// from scratch under several recipes, then the FP32 model cast directly to four MX formats,
// with both tables, a loss-curve plot and a JSON of the figures. `mx demo --synthetic` is the
// quick tour instead: the format table, then every format under each of the four scale rules
// on synthetic tensors, with RMSE, SQNR and bits per element.
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "mx/core/format.h"
#include "mx/data/corpus.h"
#include "mx/io/atomic_file.h"
#include "mx/study/synthetic.h"
#include "mx/train/small_paper.h"
#include "tools/mx/commands.h"
#include "tools/mx/direct_cast_table.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct DemoOptions {
  bool synthetic = false;
  bool json = false;
  int64_t count = 1 << 20;
  uint64_t seed = 1;
  int threads = 0;
  train::SmallPaperOptions paper;
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

void run_synthetic_tour(const DemoOptions& o) {
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

std::string run_paper_demo(const DemoOptions& o) {
  if (std::string e = io::check_output_folder(o.paper.out_dir); !e.empty()) return e;
  train::SmallPaperOptions p = o.paper;
  p.seed = o.seed;
  p.threads = o.threads;
  p.paths = data::data_paths_from_environment();
  // Here rather than only in the first run, so that a missing corpus is the one line printed.
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(p.data, p.paths, &corpus); !e.empty()) return e;
  if (!o.json) fmt::print("mxkit demo: the MX paper in small\n");
  if (!o.json)
    fmt::print(
        "A tiny GPT ({} preset, byte vocabulary) trained on {} for {} steps of {} x 64 "
        "tokens\nunder each recipe, then the FP32 model cast directly to MX formats.\n\n",
        p.model, p.data, p.steps, p.batch);
  std::unique_ptr<Progress> progress;
  std::string current;
  train::SmallPaperCallbacks callbacks;
  callbacks.on_message = [&](const std::string& line) {
    if (progress) progress->finish();
    fmt::print(stderr, "{}\n", line);
  };
  callbacks.on_step = [&](const std::string& recipe, int64_t step, int64_t total, float loss) {
    if (recipe != current || !progress) {
      progress = std::make_unique<Progress>(fmt::format("{} steps", recipe), total);
      current = recipe;
    }
    progress->update(step, fmt::format("loss {:.4f}", loss));
  };
  train::SmallPaperResult r;
  if (std::string e = train::run_small_paper(p, callbacks, &r); !e.empty()) return e;
  if (progress) progress->finish();
  if (o.json) {
    std::ifstream in(r.json_path);
    std::stringstream text;
    text << in.rdbuf();
    fmt::print("{}", text.str());
    return "";
  }
  const double fp32 = r.trained.front().val_loss;
  fmt::print("\n1. Training from scratch ({} parameters, same seed and schedule)\n", r.parameters);
  fmt::print("  {:<16} {:>10} {:>10} {:>10} {:>9}\n", "recipe", "val loss",
             fmt::format("vs {}", r.trained.front().recipe), "train loss", "tokens/s");
  for (const train::TrainedRecipe& t : r.trained) {
    fmt::print("  {:<16} {:>10.4f} {:>+10.4f} {:>10.4f} {:>9.0f}\n", t.recipe, t.val_loss,
               t.val_loss - fp32, t.train_loss, t.tokens_per_s);
  }
  fmt::print("\n2. Direct cast of the {} model (no retraining), {} validation tokens\n",
             r.trained.front().recipe, r.cast.empty() ? 0 : r.cast.front().result.tokens);
  std::vector<std::pair<std::string, train::DirectCastResult>> rows;
  for (const train::CastRecipe& c : r.cast) rows.emplace_back(c.recipe, c.result);
  print_direct_cast_table(rows);
  fmt::print(
      "\nOutputs in {}:\n  loss.png      loss curves of every run\n"
      "  results.json  both tables\n  runs/<recipe>/  log.csv, run.json, checkpoint and "
      "model.safetensors of each run\n",
      p.out_dir);
  return "";
}

}  // namespace

void register_demo(CLI::App& app) {
  static DemoOptions options;
  CLI::App* cmd = app.add_subcommand(
      "demo", "The MX paper in small: train a tiny GPT per recipe, then cast it directly");
  CLI::Option* synthetic = cmd->add_flag("--synthetic", options.synthetic,
                                         "Instead: every format x scale rule on synthetic tensors");
  // The tour trains nothing and writes nothing: the training demo's options are refused there.
  cmd->add_option("--data", options.paper.data, "Corpus to train on")
      ->capture_default_str()
      ->excludes(synthetic);
  cmd->add_option("--steps", options.paper.steps, "Training steps per recipe")
      ->check(integer_in(1, int64_t{1} << 40))
      ->capture_default_str()
      ->excludes(synthetic);
  cmd->add_option("--batch", options.paper.batch, "Sequences per step")
      ->check(integer_in(1, int64_t{1} << 20))
      ->capture_default_str()
      ->excludes(synthetic);
  cmd->add_option("-o,--out", options.paper.out_dir, "Output folder")
      ->capture_default_str()
      ->excludes(synthetic);
  cmd->add_flag("--json", options.json, "Print the figures (results.json) instead of tables")
      ->excludes(synthetic);
  cmd->add_option("--count", options.count, "Values per synthetic tensor (--synthetic)")
      ->check(integer_in(1, int64_t{1} << 28))
      ->needs(synthetic);
  cmd->add_option("--seed", options.seed, "Seed of the runs (or of the synthetic tensors)")
      ->check(unsigned_integer());
  cmd->add_option("--threads", options.threads, "Threads (0: all)")->check(thread_count());
  cmd->callback([] {
    run_command("demo", [] {
      if (!options.synthetic) return run_paper_demo(options);
      run_synthetic_tour(options);
      return std::string();
    });
  });
}

}  // namespace mx::tools
