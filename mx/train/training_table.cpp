#include "mx/train/training_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mx/data/token_shard.h"
#include "mx/io/atomic_file.h"
#include "mx/io/output_folder.h"
#include "mx/nn/params.h"
#include "mx/train/checkpoint.h"
#include "mx/train/loss_plot.h"
#include "mx/train/run_log.h"
#include "mx/train/run_summary.h"

namespace mx::train {

// From the paper's table of generative training results (MX_REFERENCE.md section 8).
const PaperTrainingRow kPaperTrainingRows[4] = {
    {"GPT-20M", 20'000'000, 3.98, 4.01, 4.04},
    {"GPT-150M", 150'000'000, 3.30, 3.32, 3.33},
    {"GPT-300M", 300'000'000, 3.11, 3.12, 3.14},
    {"GPT-1.5B", 1'500'000'000, 2.74, 2.75, 2.76},
};

namespace {

namespace fs = std::filesystem;

const PaperTrainingRow& nearest_paper_row(int64_t parameters) {
  const PaperTrainingRow* best = &kPaperTrainingRows[0];
  for (const PaperTrainingRow& row : kPaperTrainingRows) {
    const double d = std::abs(std::log(double(parameters) / double(row.parameters)));
    if (d < std::abs(std::log(double(parameters) / double(best->parameters)))) best = &row;
  }
  return *best;
}

std::optional<double> paper_gap(const PaperTrainingRow& row, const std::string& recipe) {
  if (recipe == "fp32") return 0.0;
  if (recipe == "mxfp6") return row.mxfp6 - row.fp32;
  if (recipe == "mxfp4w-mxfp6a") return row.mxfp4w_mxfp6a - row.fp32;
  return std::nullopt;
}

std::vector<std::string> differing_settings(const TableRun& run, const TableRun& base) {
  std::vector<std::string> out;
  if (run.steps != base.steps) out.push_back("steps");
  if (run.batch != base.batch) out.push_back("batch");
  if (run.seq_len != base.seq_len) out.push_back("seq_len");
  if (run.seed != base.seed) out.push_back("seed");
  if (run.train_tokens != base.train_tokens) out.push_back("data");
  return out;
}

std::string signed_loss(double x) {
  return fmt::format("{:+.4f}", x);
}

std::string gap_text(const std::optional<double>& gap) {
  return gap ? signed_loss(*gap) : "–";
}

std::string paper_text(const std::optional<double>& gap, const std::string& model) {
  return gap ? fmt::format("{} ({})", signed_loss(*gap), model) : "–";
}

nlohmann::json or_null(const std::optional<double>& x) {
  return x ? nlohmann::json(*x) : nlohmann::json();
}

std::string count_text(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", double(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", double(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", double(n) / 1e3);
  return fmt::format("{}", n);
}

// 241563 -> "241,563": rates that are read against each other digit by digit.
std::string grouped_text(double x) {
  std::string digits = fmt::format("{:.0f}", x), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

namespace {

// The run's settings, steps done and training-split size: from its summary where it has one
// (a few hundred bytes), else from its checkpoint and token shard (a run made before summaries).
std::string read_run_settings(const fs::path& dir, RunSummary* out) {
  std::error_code ec;
  if (fs::exists(dir / kRunSummaryFile, ec)) {
    return read_run_summary((dir / kRunSummaryFile).string(), out);
  }
  if (!fs::exists(dir / kCheckpointFile, ec)) {
    return fmt::format("holds neither {} nor {}: not a run folder, or one archived without its {}",
                       kRunSummaryFile, kCheckpointFile, kRunSummaryFile);
  }
  Checkpoint ckpt;
  if (std::string e = ckpt.open((dir / kCheckpointFile).string()); !e.empty()) return e;
  data::TokenShard shard;
  if (std::string e = data::open_shard(dir / "data" / "train.bin", &shard); !e.empty()) return e;
  *out = {ckpt.config(), ckpt.state().step, int64_t(shard.header().token_count)};
  return "";
}

}  // namespace

std::string read_table_run(const std::string& dir, TableRun* out) {
  TableRun r;
  r.dir = dir;
  r.label = run_label(dir);
  RunSummary s;
  if (std::string e = read_run_settings(dir, &s); !e.empty()) {
    return fmt::format("run {}: {}", dir, e);
  }
  const TrainConfig& c = s.config;
  r.model = c.model;
  r.recipe = c.recipe.name;
  r.parameters = nn::Params(c.model_config, false).count();
  r.steps = s.step;
  r.batch = c.batch;
  r.seq_len = c.seq_len;
  r.seed = c.seed;
  r.tokens = r.steps * r.batch * r.seq_len;
  r.train_tokens = s.train_tokens;
  std::vector<LogRow> rows;
  if (std::string e = read_log((fs::path(dir) / kLogFile).string(), &rows); !e.empty()) {
    return fmt::format("run {}: {}", dir, e);
  }
  for (const LogRow& row : rows) {
    if (row.step > r.steps) break;  // a log that ran on past the checkpoint
    if (row.val_loss) r.val_loss = *row.val_loss, r.val_step = row.step;
    r.tokens_per_s = row.tokens_per_s, r.elapsed_s = row.elapsed_s;
  }
  if (r.val_step == 0) return fmt::format("run {}: its log has no validation pass", dir);
  *out = std::move(r);
  return "";
}

// The run of r's model whose recipe is `recipe`: of r's seed where there is one.
const TableRun* find_baseline(const std::vector<TableRun>& runs, const TableRun& r,
                              const std::string& recipe) {
  const TableRun* base = nullptr;
  for (const TableRun& b : runs) {
    if (b.recipe != recipe || b.model != r.model || b.parameters != r.parameters) continue;
    if (base == nullptr || (b.seed == r.seed && base->seed != r.seed)) base = &b;
  }
  return base;
}

std::string build_training_table(const std::vector<std::string>& dirs,
                                 const std::string& baseline_recipe, std::vector<TableRun>* out,
                                 const std::vector<std::string>& other_baselines) {
  std::vector<TableRun> runs(dirs.size());
  for (size_t i = 0; i < dirs.size(); ++i) {
    if (std::string e = read_table_run(dirs[i], &runs[i]); !e.empty()) return e;
  }
  for (TableRun& r : runs) {
    const PaperTrainingRow& paper = nearest_paper_row(r.parameters);
    r.paper_model = paper.model;
    r.paper_gap = paper_gap(paper, r.recipe);
    if (const TableRun* base = find_baseline(runs, r, baseline_recipe)) {
      r.baseline = base->label;
      r.gap = r.val_loss - base->val_loss;
      r.differs = differing_settings(r, *base);
    }
    for (const std::string& recipe : other_baselines) {
      TableRun::OtherGap g{recipe, "", std::nullopt};
      if (const TableRun* base = find_baseline(runs, r, recipe)) {
        g.baseline = base->label;
        g.gap = r.val_loss - base->val_loss;
      }
      r.other_gaps.push_back(std::move(g));
    }
  }
  *out = std::move(runs);
  return "";
}

std::vector<RecipeSummary> summarize_by_recipe(const std::vector<TableRun>& runs,
                                               const std::string& baseline_recipe) {
  std::vector<RecipeSummary> out;
  auto find = [&](const std::string& model, int64_t parameters, const std::string& recipe) {
    for (RecipeSummary& s : out) {
      if (s.model == model && s.parameters == parameters && s.recipe == recipe) return &s;
    }
    return static_cast<RecipeSummary*>(nullptr);
  };
  for (const TableRun& r : runs) {
    RecipeSummary* s = find(r.model, r.parameters, r.recipe);
    if (s == nullptr) {
      out.push_back({r.model, r.recipe, r.parameters, 0, 0, r.val_loss, r.val_loss, std::nullopt,
                     r.paper_gap, r.paper_model});
      s = &out.back();
    }
    s->runs += 1;
    s->mean_val_loss += r.val_loss;
    s->min_val_loss = std::min(s->min_val_loss, r.val_loss);
    s->max_val_loss = std::max(s->max_val_loss, r.val_loss);
  }
  for (RecipeSummary& s : out) s.mean_val_loss /= double(s.runs);
  for (RecipeSummary& s : out) {
    if (const RecipeSummary* base = find(s.model, s.parameters, baseline_recipe)) {
      s.gap = s.mean_val_loss - base->mean_val_loss;
    }
  }
  return out;
}

std::string training_table_markdown(const std::vector<TableRun>& runs,
                                    const std::string& baseline_recipe) {
  std::string other_heads, other_rule;
  if (!runs.empty()) {
    for (const TableRun::OtherGap& g : runs[0].other_gaps) {
      other_heads += fmt::format(" gap to {} |", g.recipe);
      other_rule += "---:|";
    }
  }
  std::string s = fmt::format(
      "| run | model | parameters | recipe | tokens | tokens / parameter | epochs | "
      "validation loss | gap |{} paper's gap | wall | tokens/s |\n"
      "|---|---|---:|---|---:|---:|---:|---:|---:|{}---:|---:|---:|\n",
      other_heads, other_rule);
  std::vector<std::string> notes;
  for (const TableRun& r : runs) {
    std::string gap = gap_text(r.gap);
    if (!r.differs.empty()) {
      std::string what;
      for (const std::string& d : r.differs) what += (what.empty() ? "" : ", ") + d;
      notes.push_back(fmt::format("{} differs from {} in {}", r.label, r.baseline, what));
      gap += fmt::format(" ({})", notes.size());
    }
    std::string others;
    for (const TableRun::OtherGap& g : r.other_gaps)
      others += fmt::format(" {} |", gap_text(g.gap));
    s += fmt::format(
        "| {} | {} | {} | {} | {} | {:.2f} | {:.2f} | {:.4f} | {} |{} {} | {:.0f} s | {} |\n",
        r.label, r.model, count_text(r.parameters), r.recipe, count_text(r.tokens),
        double(r.tokens) / double(r.parameters),
        r.train_tokens > 0 ? double(r.tokens) / double(r.train_tokens) : 0.0, r.val_loss, gap,
        others, paper_text(r.paper_gap, r.paper_model), r.elapsed_s, grouped_text(r.tokens_per_s));
  }
  for (size_t i = 0; i < notes.size(); ++i) s += fmt::format("\n({}) {}", i + 1, notes[i]);
  if (!notes.empty()) s += "\n";
  const std::vector<RecipeSummary> summaries = summarize_by_recipe(runs, baseline_recipe);
  const bool repeated = std::any_of(summaries.begin(), summaries.end(),
                                    [](const RecipeSummary& x) { return x.runs > 1; });
  if (!repeated) return s;
  s += "\n| model | recipe | runs | mean validation loss | lowest .. highest | gap of the means | "
       "paper's gap |\n|---|---|---:|---:|---:|---:|---:|\n";
  for (const RecipeSummary& x : summaries) {
    s += fmt::format("| {} | {} | {} | {:.4f} | {:.4f} .. {:.4f} | {} | {} |\n", x.model, x.recipe,
                     x.runs, x.mean_val_loss, x.min_val_loss, x.max_val_loss, gap_text(x.gap),
                     paper_text(x.paper_gap, x.paper_model));
  }
  return s;
}

std::string training_table_json(const std::vector<TableRun>& runs,
                                const std::string& baseline_recipe) {
  nlohmann::json a = nlohmann::json::array();
  for (const TableRun& r : runs) {
    nlohmann::json j = {{"run", r.label},
                        {"dir", r.dir},
                        {"model", r.model},
                        {"recipe", r.recipe},
                        {"parameters", r.parameters},
                        {"steps", r.steps},
                        {"batch", r.batch},
                        {"seq_len", r.seq_len},
                        {"seed", r.seed},
                        {"tokens", r.tokens},
                        {"train_tokens", r.train_tokens},
                        {"val_loss", r.val_loss},
                        {"val_step", r.val_step},
                        {"tokens_per_s", r.tokens_per_s},
                        {"elapsed_s", r.elapsed_s},
                        {"baseline", r.baseline},
                        {"gap", or_null(r.gap)},
                        {"paper_model", r.paper_model},
                        {"paper_gap", or_null(r.paper_gap)},
                        {"differs", r.differs}};
    nlohmann::json others = nlohmann::json::array();
    for (const TableRun::OtherGap& g : r.other_gaps) {
      others.push_back({{"recipe", g.recipe}, {"baseline", g.baseline}, {"gap", or_null(g.gap)}});
    }
    j["other_gaps"] = std::move(others);
    a.push_back(std::move(j));
  }
  nlohmann::json recipes = nlohmann::json::array();
  for (const RecipeSummary& x : summarize_by_recipe(runs, baseline_recipe)) {
    recipes.push_back({{"model", x.model},
                       {"recipe", x.recipe},
                       {"parameters", x.parameters},
                       {"runs", x.runs},
                       {"mean_val_loss", x.mean_val_loss},
                       {"min_val_loss", x.min_val_loss},
                       {"max_val_loss", x.max_val_loss},
                       {"gap", or_null(x.gap)},
                       {"paper_model", x.paper_model},
                       {"paper_gap", or_null(x.paper_gap)}});
  }
  const nlohmann::json doc = {{"runs", std::move(a)}, {"recipes", std::move(recipes)}};
  return doc.dump(2) + "\n";
}

std::string write_training_table(const std::vector<TableRun>& runs, const std::string& out_dir,
                                 bool plot, const std::string& baseline_recipe) {
  io::OutputFolder dir;
  if (std::string e = dir.open(out_dir); !e.empty()) return e;
  if (std::string e = io::write_text_atomically(dir.file("table.md"),
                                                training_table_markdown(runs, baseline_recipe));
      !e.empty()) {
    return dir.named(e);
  }
  if (std::string e = io::write_text_atomically(dir.file("table.json"),
                                                training_table_json(runs, baseline_recipe));
      !e.empty()) {
    return dir.named(e);
  }
  if (plot) {
    std::vector<RunCurve> curves;
    for (const TableRun& r : runs) curves.push_back({r.label, r.dir});
    if (std::string e = plot_loss_curves(curves, dir.file("loss.png"),
                                         {.title = "Validation and training loss"});
        !e.empty()) {
      return dir.named(e);
    }
  }
  return dir.commit();
}

}  // namespace mx::train
