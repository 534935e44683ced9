// `mx study table`: the MX paper's training table read back from finished run folders.
#include "mx/train/training_table.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "mx/nn/model_config.h"
#include "mx/nn/recipe.h"
#include "mx/train/checkpoint.h"
#include "mx/train/loss_plot.h"
#include "mx/train/run_log.h"
#include "mx/train/run_summary.h"
#include "mx/train/trainer.h"
#include "tests/temp_dir.h"
#include "tests/tiny_run.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

// The tests' tiny GPT trained `steps` steps on a small text file, in batches of 2, validated every
// 2 steps.
std::string train_tiny(const fs::path& text, const std::string& recipe, int64_t steps,
                       const fs::path& run_dir, uint64_t seed = 1) {
  TrainConfig c = test::tiny_config(text.string(), recipe, steps);
  c.model = "tiny";
  c.batch = 2;
  c.warmup = 1;
  c.eval_every = 2;
  c.eval_batches = 1;
  c.checkpoint_every = steps;
  c.seed = seed;
  TrainResult result;
  return run_training(&c, true, run_dir.string(), {}, {}, &result);
}

double last_val_loss(const fs::path& run_dir) {
  std::vector<LogRow> rows;
  EXPECT_EQ(read_log((run_dir / kLogFile).string(), &rows), "");
  double v = 0;
  for (const LogRow& r : rows) {
    if (r.val_loss) v = *r.val_loss;
  }
  return v;
}

class TrainingTable : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    std::ofstream text(dir_->path / "corpus.txt");
    for (int i = 0; i < 400; ++i) text << "line " << i << ": the quick brown fox jumps.\n";
    text.close();
    ASSERT_EQ(train_tiny(dir_->path / "corpus.txt", "fp32", 4, dir_->path / "fp32"), "");
    ASSERT_EQ(train_tiny(dir_->path / "corpus.txt", "mxfp6", 4, dir_->path / "mxfp6"), "");
    ASSERT_EQ(train_tiny(dir_->path / "corpus.txt", "mxfp4w-mxfp6a", 2, dir_->path / "short"), "");
    ASSERT_EQ(train_tiny(dir_->path / "corpus.txt", "fp32", 4, dir_->path / "fp32-seed2", 2), "");
    ASSERT_EQ(train_tiny(dir_->path / "corpus.txt", "mxfp6", 4, dir_->path / "mxfp6-seed2", 2), "");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string run(const char* name) { return (dir_->path / name).string(); }
  static TempDir* dir_;
};
TempDir* TrainingTable::dir_ = nullptr;

TEST_F(TrainingTable, GapIsTheDifferenceOfTheLastValidationLossesToTheFp32Run) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("mxfp6"), run("fp32")}, "fp32", &runs), "");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].label, "mxfp6");
  EXPECT_EQ(runs[0].recipe, "mxfp6");
  EXPECT_EQ(runs[0].baseline, "fp32");
  EXPECT_EQ(runs[0].val_loss, last_val_loss(dir_->path / "mxfp6"));
  EXPECT_EQ(runs[0].val_step, 4);
  ASSERT_TRUE(runs[0].gap.has_value());
  EXPECT_EQ(*runs[0].gap, last_val_loss(dir_->path / "mxfp6") - last_val_loss(dir_->path / "fp32"));
  ASSERT_TRUE(runs[1].gap.has_value());
  EXPECT_EQ(*runs[1].gap, 0.0);
  EXPECT_TRUE(runs[0].differs.empty());
}

// A further baseline (the RESULTS tables' "gap to bf16") is found as the first one is, and has a
// column of its own; a recipe with no run leaves its gap empty.
TEST_F(TrainingTable, FurtherBaselinesGiveGapColumnsOfTheirOwn) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("mxfp6")}, "fp32", &runs, {"mxfp6", "bf16"}),
            "");
  ASSERT_EQ(runs[0].other_gaps.size(), 2u);
  EXPECT_EQ(runs[0].other_gaps[0].recipe, "mxfp6");
  EXPECT_EQ(runs[0].other_gaps[0].baseline, "mxfp6");
  ASSERT_TRUE(runs[0].other_gaps[0].gap.has_value());
  EXPECT_EQ(*runs[0].other_gaps[0].gap,
            last_val_loss(dir_->path / "fp32") - last_val_loss(dir_->path / "mxfp6"));
  EXPECT_EQ(runs[0].other_gaps[1].baseline, "");
  EXPECT_FALSE(runs[0].other_gaps[1].gap.has_value());
  const std::string md = training_table_markdown(runs);
  EXPECT_NE(md.find("| gap | gap to mxfp6 | gap to bf16 | paper's gap |"), std::string::npos) << md;
  EXPECT_NE(md.find("| +0.0000 | – |"), std::string::npos) << md;  // mxfp6 to itself; no bf16
  EXPECT_NE(training_table_json(runs).find("\"other_gaps\""), std::string::npos);
}

TEST_F(TrainingTable, CountsTokensParametersAndTheTrainingSplit) {
  TableRun r;
  ASSERT_EQ(read_table_run(run("fp32"), &r), "");
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.tokens, 4 * 2 * 32);
  // One layer of width 64 with a 256-byte vocabulary and 32 positions: 256 x 64 + 32 x 64, plus
  // 12 d^2 + 13 d in the layer, plus the final norm.
  EXPECT_EQ(r.parameters, 256 * 64 + 32 * 64 + 12 * 64 * 64 + 13 * 64 + 2 * 64);
  EXPECT_GT(r.train_tokens, 0);
  EXPECT_LT(r.train_tokens, 400 * 40);
}

TEST_F(TrainingTable, PaperGapsComeFromThePaperRowNearestInParameters) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("mxfp6"), run("short")}, "fp32", &runs), "");
  // A model of a hundred thousand parameters is nearest the paper's GPT-20M: MXFP6 4.01 and
  // MXFP4 weights 4.04 against FP32's 3.98.
  EXPECT_EQ(runs[1].paper_model, "GPT-20M");
  ASSERT_TRUE(runs[1].paper_gap.has_value());
  EXPECT_NEAR(*runs[1].paper_gap, 0.03, 1e-12);
  ASSERT_TRUE(runs[2].paper_gap.has_value());
  EXPECT_NEAR(*runs[2].paper_gap, 0.06, 1e-12);
}

TEST_F(TrainingTable, RunsThatDifferFromTheBaselineSayHow) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("short")}, "fp32", &runs), "");
  ASSERT_EQ(runs[1].differs, std::vector<std::string>{"steps"});
  const std::string md = training_table_markdown(runs);
  EXPECT_NE(md.find("short differs from fp32 in steps"), std::string::npos) << md;
}

// Speed sits beside the loss, as the run's log gives it: wall seconds and tokens/s with their
// thousands grouped, so that rates of different recipes read against each other.
TEST(TrainingTableText, EachRowGivesTheRunsWallTimeAndTokensPerSecond) {
  TableRun r;
  r.label = r.model = r.recipe = "x";
  r.parameters = 1000, r.tokens = 2000, r.val_loss = 3.5;
  r.elapsed_s = 108.874, r.tokens_per_s = 241563.2;
  std::string md = training_table_markdown({r});
  EXPECT_NE(md.find("| 109 s | 241,563 |"), std::string::npos) << md;
  r.tokens_per_s = 999.6;
  md = training_table_markdown({r});
  EXPECT_NE(md.find("| 1,000 |"), std::string::npos) << md;
  r.tokens_per_s = 1277523;
  EXPECT_NE(training_table_markdown({r}).find("| 1,277,523 |"), std::string::npos);
}

TEST_F(TrainingTable, WithoutABaselineRunTheGapIsEmpty) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("mxfp6")}, "fp32", &runs), "");
  EXPECT_FALSE(runs[0].gap.has_value());
  EXPECT_NE(training_table_markdown(runs).find("| – |"), std::string::npos);
}

TEST_F(TrainingTable, EachRunIsComparedWithTheBaselineOfItsOwnSeed) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("fp32-seed2"), run("mxfp6"), run("mxfp6-seed2")},
                                 "fp32", &runs),
            "");
  EXPECT_EQ(runs[2].baseline, "fp32");
  EXPECT_EQ(runs[3].baseline, "fp32-seed2");
  EXPECT_TRUE(runs[3].differs.empty());
  EXPECT_EQ(*runs[3].gap,
            last_val_loss(dir_->path / "mxfp6-seed2") - last_val_loss(dir_->path / "fp32-seed2"));
}

TEST_F(TrainingTable, SeedsOfARecipeAreSummedUpByTheirMean) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("mxfp6"), run("fp32-seed2"), run("mxfp6-seed2")},
                                 "fp32", &runs),
            "");
  const std::vector<RecipeSummary> s = summarize_by_recipe(runs, "fp32");
  ASSERT_EQ(s.size(), 2u);
  const double f1 = last_val_loss(dir_->path / "fp32"),
               f2 = last_val_loss(dir_->path / "fp32-seed2");
  const double m1 = last_val_loss(dir_->path / "mxfp6"),
               m2 = last_val_loss(dir_->path / "mxfp6-seed2");
  EXPECT_EQ(s[1].recipe, "mxfp6");
  EXPECT_EQ(s[1].runs, 2);
  EXPECT_DOUBLE_EQ(s[1].mean_val_loss, (m1 + m2) / 2);
  EXPECT_EQ(s[1].min_val_loss, std::min(m1, m2));
  EXPECT_EQ(s[1].max_val_loss, std::max(m1, m2));
  ASSERT_TRUE(s[1].gap.has_value());
  EXPECT_DOUBLE_EQ(*s[1].gap, (m1 + m2) / 2 - (f1 + f2) / 2);
  EXPECT_NE(training_table_markdown(runs).find("| tiny | mxfp6 | 2 |"), std::string::npos);
}

TEST_F(TrainingTable, TheSummaryTableAppearsOnlyWhenARecipeRanMoreThanOnce) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("mxfp6")}, "fp32", &runs), "");
  EXPECT_EQ(training_table_markdown(runs).find("mean validation loss"), std::string::npos);
  const std::string json = training_table_json(runs);
  EXPECT_NE(json.find("\"runs\""), std::string::npos);
  EXPECT_NE(json.find("\"recipes\""), std::string::npos);
}

TEST_F(TrainingTable, AFolderThatIsNotAFinishedRunIsAnErrorNamingIt) {
  std::vector<TableRun> runs;
  const std::string missing = (dir_->path / "nothing").string();
  const std::string e = build_training_table({run("fp32"), missing}, "fp32", &runs);
  EXPECT_NE(e.find(missing), std::string::npos) << e;
}

// A run folder archived without its checkpoint and token shards (as from a GPU host): the log
// and the run's summary (run.json) alone give the same row; and a run made before summaries
// existed gives it from its checkpoint and shard.
TEST_F(TrainingTable, TheLogAndTheRunSummaryAloneGiveTheRunsRow) {
  TableRun whole, light, old;
  ASSERT_EQ(read_table_run(run("mxfp6"), &whole), "");
  const fs::path archived = dir_->path / "archived" / "mxfp6";
  const fs::path before = dir_->path / "before-summaries" / "mxfp6";
  fs::create_directories(archived);
  fs::create_directories(before / "data");
  for (const char* f : {kLogFile, kRunSummaryFile})
    fs::copy(dir_->path / "mxfp6" / f, archived / f);
  for (const char* f : {kLogFile, kCheckpointFile, "data/train.bin"}) {
    fs::copy(dir_->path / "mxfp6" / f, before / f);
  }
  ASSERT_EQ(read_table_run(archived.string(), &light), "");
  ASSERT_EQ(read_table_run(before.string(), &old), "");
  for (const TableRun* r : {&light, &old}) {
    EXPECT_EQ(r->label, "mxfp6");
    EXPECT_EQ(r->model, whole.model);
    EXPECT_EQ(r->recipe, whole.recipe);
    EXPECT_EQ(r->parameters, whole.parameters);
    EXPECT_EQ(r->steps, whole.steps);
    EXPECT_EQ(r->tokens, whole.tokens);
    EXPECT_EQ(r->train_tokens, whole.train_tokens);
    EXPECT_EQ(r->val_loss, whole.val_loss);
    EXPECT_EQ(r->val_step, whole.val_step);
  }
  EXPECT_GT(whole.train_tokens, 0);
}

TEST_F(TrainingTable, AMalformedRunSummaryIsAnErrorNamingTheRun) {
  const fs::path bad = dir_->path / "bad-summary";
  fs::create_directories(bad);
  fs::copy(dir_->path / "fp32" / kLogFile, bad / kLogFile);
  RunSummary s;
  ASSERT_EQ(read_run_summary((dir_->path / "fp32" / kRunSummaryFile).string(), &s), "");
  s.step = s.config.steps + 1;
  ASSERT_EQ(write_run_summary((bad / kRunSummaryFile).string(), s), "");
  TableRun r;
  std::string e = read_table_run(bad.string(), &r);
  EXPECT_NE(e.find(bad.string()), std::string::npos) << e;
  EXPECT_NE(e.find("step"), std::string::npos) << e;
  std::ofstream(bad / kRunSummaryFile) << "{\"step\": 4}";
  e = read_table_run(bad.string(), &r);
  EXPECT_NE(e.find("not a run summary"), std::string::npos) << e;
}

// `mx plot --validation-only --from-step`: a line of validation passes per run, titled by the
// run, from the given step on; the default draws each run's training curve and its passes.
TEST_F(TrainingTable, LossCurvesKeepTheValidationPassesFromTheStepAsked) {
  const std::vector<RunCurve> runs = {{"fp32", run("fp32")}, {"mxfp6", run("mxfp6")}};
  study::LinePlot all, val;
  ASSERT_EQ(loss_curves(runs, {}, &all), "");
  ASSERT_EQ(all.series.size(), 4u);
  EXPECT_EQ(all.series[0].title, "fp32 train");
  EXPECT_EQ(all.series[1].title, "fp32 val");
  EXPECT_EQ(all.series[0].x, (std::vector<double>{1, 2, 3, 4}));
  ASSERT_EQ(loss_curves(runs, {.validation_only = true, .from_step = 3}, &val), "");
  ASSERT_EQ(val.series.size(), 2u);
  EXPECT_EQ(val.series[1].title, "mxfp6");
  EXPECT_EQ(val.series[1].x, std::vector<double>{4});
  EXPECT_EQ(val.series[1].y, std::vector<double>{last_val_loss(dir_->path / "mxfp6")});
  const std::string e = loss_curves(runs, {.from_step = 5}, &val);
  EXPECT_NE(e.find("no step at or after 5"), std::string::npos) << e;
}

TEST_F(TrainingTable, WritesTheTableItsJsonAndThePlot) {
  std::vector<TableRun> runs;
  ASSERT_EQ(build_training_table({run("fp32"), run("mxfp6")}, "fp32", &runs), "");
  const fs::path out = dir_->path / "table";
  ASSERT_EQ(write_training_table(runs, out.string()), "");
  EXPECT_GT(fs::file_size(out / "table.md"), 0u);
  EXPECT_GT(fs::file_size(out / "table.json"), 0u);
  EXPECT_GT(fs::file_size(out / "loss.png"), 0u);
  auto contents = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(contents(out / "table.md"), training_table_markdown(runs));
  EXPECT_EQ(contents(out / "table.json"), training_table_json(runs));
  EXPECT_EQ(contents(out / "loss.png").substr(1, 3), "PNG");
}

}  // namespace
}  // namespace mx::train
