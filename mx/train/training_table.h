// The MX paper's training table (Rouhani et al. 2023, table 4) from finished run folders: each
// run's final validation loss, its gap to the FP32 run of the same model, and the paper's gap
// for the same recipe beside it. `mx study table` prints it and writes table.md, table.json and
// loss.png.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mx::train {

struct TableRun {
  std::string label;  // the run folder's name
  std::string dir;
  std::string model;  // the preset the run names
  std::string recipe;
  int64_t parameters = 0;  // every stored parameter; the tied classifier counted once
  int64_t steps = 0;       // steps done
  int64_t batch = 0, seq_len = 0;
  uint64_t seed = 0;
  int64_t tokens = 0;        // steps x batch x seq_len
  int64_t train_tokens = 0;  // tokens in the run's training split
  double val_loss = 0;       // the run's last validation pass
  int64_t val_step = 0;      // the step it followed
  double tokens_per_s = 0;   // over the whole run, as its log's last row says
  double elapsed_s = 0;
  std::string baseline;              // label of the run the gap is taken to ("" when none)
  std::optional<double> gap;         // val_loss minus the baseline's
  std::string paper_model;           // the paper's model nearest in parameters
  std::optional<double> paper_gap;   // the paper's gap for this recipe on that model
  std::vector<std::string> differs;  // settings that differ from the baseline's
  // Gaps to further baselines (`mx study table --also-baseline R`), in the order asked.
  struct OtherGap {
    std::string recipe, baseline;  // the recipe asked for, the run found ("" when none)
    std::optional<double> gap;
  };
  std::vector<OtherGap> other_gaps;
};

// The runs of one model under one recipe (seeds, say), summed up.
struct RecipeSummary {
  std::string model, recipe;
  int64_t parameters = 0;
  int runs = 0;
  double mean_val_loss = 0, min_val_loss = 0, max_val_loss = 0;
  std::optional<double> gap;  // mean_val_loss minus the baseline recipe's mean
  std::optional<double> paper_gap;
  std::string paper_model;
};

// The paper's final losses: GPT models of 20M to 1.5B parameters under FP32, MXFP6 and MXFP4
// weights with MXFP6 activations and gradients.
struct PaperTrainingRow {
  const char* model;
  int64_t parameters;
  double fp32, mxfp6, mxfp4w_mxfp6a;
};
extern const PaperTrainingRow kPaperTrainingRows[4];

// Reads one finished run: its settings, steps done and training-split size (from its run.json,
// run_summary.h, or where a run has none, from its checkpoint and token shard), and its log's
// last validation pass up to those steps.
std::string read_table_run(const std::string& dir, TableRun* out);

// Reads every run and fills the gaps: the baseline of a run is the run of the same model and
// seed whose recipe is `baseline_recipe`, or failing that the first such run of the model. Each
// of `other_baselines` gives a further gap, found the same way (TableRun::other_gaps).
std::string build_training_table(const std::vector<std::string>& dirs,
                                 const std::string& baseline_recipe, std::vector<TableRun>* out,
                                 const std::vector<std::string>& other_baselines = {});

// One summary per model and recipe, in the order they first appear.
std::vector<RecipeSummary> summarize_by_recipe(const std::vector<TableRun>& runs,
                                               const std::string& baseline_recipe);

// The runs' table (a "gap to R" column for each further baseline), then, when some model and
// recipe has several runs, the summaries' table.
std::string training_table_markdown(const std::vector<TableRun>& runs,
                                    const std::string& baseline_recipe = "fp32");
// {"runs": [...], "recipes": [...]}.
std::string training_table_json(const std::vector<TableRun>& runs,
                                const std::string& baseline_recipe = "fp32");

// out_dir/table.md, out_dir/table.json and (with `plot`) out_dir/loss.png, each written
// atomically.
std::string write_training_table(const std::vector<TableRun>& runs, const std::string& out_dir,
                                 bool plot = true, const std::string& baseline_recipe = "fp32");

}  // namespace mx::train
