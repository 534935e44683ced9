// Training runs end to end: checkpoints, bit-exact resume, model files, direct-cast
// evaluation and generation. Runs train a tiny GPT for a few steps on generated text in a
// temporary folder; the stories260K checks need $MX_DATA_DIR and skip without it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <tuple>

#include "mx/data/byte_tokenizer.h"
#include "mx/io/content_checksum.h"
#include "mx/io/safetensors.h"
#include "mx/nn/model_file.h"
#include "mx/train/checkpoint.h"
#include "mx/train/eval_data.h"
#include "mx/train/evaluate.h"
#include "mx/train/generate.h"
#include "mx/train/run_folder.h"
#include "mx/train/run_log.h"
#include "mx/train/trainer.h"
#include "tests/tiny_run.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;

// A fresh folder under the system temporary directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            (std::string("mx_train_test_") + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// English-like text: words drawn from a small vocabulary with a skewed distribution.
std::string write_corpus(const TempDir& dir) {
  const char* words[] = {"the",   "model", "learns", "a",         "block",  "scale",
                         "of",    "eight", "bits",   "and",       "narrow", "elements",
                         "share", "it",    "per",    "thirty-two"};
  std::mt19937 rng(5);
  std::string text;
  for (int i = 0; i < 40000; ++i) {
    const int w = std::min<int>(15, int(std::abs(std::normal_distribution<>(0, 5)(rng))));
    text += words[w];
    text += (i % 13 == 12) ? ".\n" : " ";
  }
  const std::string path = dir / "corpus.txt";
  std::ofstream(path) << text;
  return path;
}

using test::tiny_config;

TrainResult train(TrainConfig config, const std::string& run_dir, bool resume = false,
                  std::optional<int64_t> stop_at = std::nullopt, int threads = 0) {
  TrainOptions options;
  options.resume = resume;
  options.stop_at = stop_at;
  options.threads = threads;
  TrainResult r;
  const std::string e = run_training(&config, false, run_dir, options, {}, &r);
  EXPECT_EQ(e, "");
  return r;
}

std::vector<std::string> log_lines_without_timing(const std::string& run_dir) {
  std::vector<LogRow> rows;
  EXPECT_EQ(read_log(run_dir + "/log.csv", &rows), "");
  std::vector<std::string> lines;
  for (LogRow r : rows) {
    r.tokens_per_s = r.elapsed_s = 0;
    lines.push_back(format_log_row(r));
  }
  return lines;
}

TEST(Training, StoppedAndResumedRunMatchesUninterruptedRunBitForBit) {
  TempDir dir;
  const std::string data = write_corpus(dir);
  const TrainConfig config = tiny_config(data, "mxfp6", 10);
  train(config, dir / "straight");
  const TrainResult first = train(config, dir / "interrupted", false, 5);
  EXPECT_EQ(first.steps_done, 5);
  EXPECT_FALSE(first.finished);
  EXPECT_FALSE(fs::exists(dir / "interrupted/model.safetensors"));
  const TrainResult second = train(config, dir / "interrupted", true, std::nullopt, 1);
  EXPECT_TRUE(second.finished);
  EXPECT_EQ(second.steps_done, 10);
  EXPECT_EQ(log_lines_without_timing(dir / "straight"),
            log_lines_without_timing(dir / "interrupted"));
  nn::LoadedModel a, b;
  ASSERT_EQ(nn::load_model_file(dir / "straight/model.safetensors", &a), "");
  ASSERT_EQ(nn::load_model_file(dir / "interrupted/model.safetensors", &b), "");
  ASSERT_EQ(a.model->params().count(), b.model->params().count());
  EXPECT_EQ(0, std::memcmp(a.model->params().data(), b.model->params().data(),
                           sizeof(float) * size_t(a.model->params().count())));
}

TEST(Training, LossFallsOnGeneratedText) {
  TempDir dir;
  TrainConfig config = tiny_config(write_corpus(dir), "fp32", 60);
  config.max_lr = 1e-2f;
  config.eval_every = 60;
  std::vector<LogRow> rows;
  train(config, dir / "run");
  ASSERT_EQ(read_log(dir / "run/log.csv", &rows), "");
  ASSERT_EQ(rows.size(), 60u);
  ASSERT_TRUE(rows.back().val_loss.has_value());
  // Bytes start near ln(256) = 5.5 nats; 16 words with skewed frequencies need far fewer.
  EXPECT_GT(rows.front().train_loss, 5.0f);
  EXPECT_LT(*rows.back().val_loss, 2.5);
}

// Gradient accumulation: a batch of 4 in passes of 1 or 2 sequences sees the same windows and
// takes the mean of the same per-token losses as one pass of 4, so under fp32 the runs differ
// only by the order of float32 sums (far below 1e-4 over a few steps), the gradient has the same
// norm, and the validation windows are the same.
TEST(Training, MicroBatchesAccumulateTheWholeBatchsGradient) {
  TempDir dir;
  const std::string data = write_corpus(dir);
  TrainConfig config = tiny_config(data, "fp32", 8);
  train(config, dir / "whole");
  std::vector<LogRow> whole;
  ASSERT_EQ(read_log(dir / "whole/log.csv", &whole), "");
  for (const int64_t micro : {1, 2}) {
    config.micro_batch = micro;
    const std::string run = dir / ("micro" + std::to_string(micro));
    train(config, run);
    std::vector<LogRow> rows;
    ASSERT_EQ(read_log(run + "/log.csv", &rows), "");
    ASSERT_EQ(rows.size(), whole.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_NEAR(rows[i].train_loss, whole[i].train_loss, 1e-4) << "step " << i + 1;
      // The norm before clipping: AdamW and the clip would hide a gradient off by a factor.
      EXPECT_NEAR(rows[i].grad_norm, whole[i].grad_norm, 1e-4 * whole[i].grad_norm);
      ASSERT_EQ(rows[i].val_loss.has_value(), whole[i].val_loss.has_value());
      if (rows[i].val_loss) {
        EXPECT_NEAR(*rows[i].val_loss, *whole[i].val_loss, 1e-4);
      }
    }
  }
}

// Stochastic rounding keys each pass of a step apart, and a resumed run with passes still
// repeats the uninterrupted one bit for bit.
TEST(Training, MicroBatchedRunsResumeBitForBit) {
  TempDir dir;
  TrainConfig config = tiny_config(write_corpus(dir), "mxfp4", 6);
  config.micro_batch = 2;
  train(config, dir / "straight");
  train(config, dir / "interrupted", false, 3);
  train(config, dir / "interrupted", true);
  EXPECT_EQ(log_lines_without_timing(dir / "straight"),
            log_lines_without_timing(dir / "interrupted"));
}

// A finetune of `steps` from `init` under `recipe`, on the base run's data in its batches.
TrainConfig finetune_of(const TrainConfig& base, const std::string& init, std::string_view recipe,
                        int64_t steps) {
  TrainConfig tuned;
  EXPECT_EQ(make_finetune_config(init, recipe, "", steps, {}, &tuned), "");
  tuned.data = base.data;
  tuned.batch = base.batch;
  tuned.seq_len = base.seq_len;
  return tuned;
}

// --init: a run that starts from a model file takes its shape and weights, so its first loss
// is the trained model's, not a fresh model's; a file of another shape is refused.
TEST(Training, AFinetuneStartsFromTheModelFilesWeights) {
  TempDir dir;
  const std::string data = write_corpus(dir);
  TrainConfig base = tiny_config(data, "fp32", 40);
  base.max_lr = 1e-2f;
  train(base, dir / "base");
  TrainConfig tuned = finetune_of(base, dir / "base/model.safetensors", "fp32", 2);
  EXPECT_EQ(nn::model_config_to_json(tuned.model_config),
            nn::model_config_to_json(base.model_config));
  EXPECT_EQ(tuned.tokenizer, "bytes");
  train(tuned, dir / "tuned");
  std::vector<LogRow> fresh, from_file;
  ASSERT_EQ(read_log(dir / "base/log.csv", &fresh), "");
  ASSERT_EQ(read_log(dir / "tuned/log.csv", &from_file), "");
  EXPECT_LT(from_file.front().train_loss, fresh.back().train_loss + 0.5f);
  EXPECT_LT(from_file.front().train_loss, fresh.front().train_loss - 2.0f);

  TrainConfig other = tuned;
  other.model_config.n_layers = 2;
  TrainOptions options;
  TrainResult r;
  const std::string e = run_training(&other, false, dir / "other", options, {}, &r);
  EXPECT_NE(e.find("--init: "), std::string::npos) << e;
}

// --init-moments: the finetune's AdamW continues the run's second moments and update count,
// its first moments starting from zero. After one step, m = (1 - beta1) g and
// v = beta2 v_run + (1 - beta2) g^2 for the step's (clipped) gradient g. Other shapes and plain
// model files are refused.
TEST(Training, AFinetuneCanContinueTheRunsSecondMoments) {
  TempDir dir;
  const std::string data = write_corpus(dir);
  TrainConfig base = tiny_config(data, "fp32", 12);
  train(base, dir / "base");
  TrainConfig tuned = finetune_of(base, dir / "base", "mxfp4", 1);
  tuned.init_moments = true;
  train(tuned, dir / "tuned");

  Checkpoint run, finetune;
  ASSERT_EQ(run.open(dir / "base/checkpoint.safetensors"), "");
  ASSERT_EQ(finetune.open(dir / "tuned/checkpoint.safetensors"), "");
  EXPECT_EQ(finetune.state().adam_steps, run.state().adam_steps + 1);
  EXPECT_TRUE(finetune.config().init_moments);
  nn::Params weights(base.model_config);
  const size_t n = size_t(weights.count());
  std::vector<float> m_run(n), v_run(n), m(n), v(n);
  ASSERT_EQ(run.load(&weights, m_run.data(), v_run.data()), "");
  ASSERT_EQ(finetune.load(&weights, m.data(), v.data()), "");
  const double b1 = tuned.adamw.beta1, b2 = tuned.adamw.beta2;
  int64_t moved = 0;
  for (size_t i = 0; i < n; ++i) {
    const double g = m[i] / (1 - b1);
    const double want = b2 * v_run[i] + (1 - b2) * g * g;
    ASSERT_NEAR(v[i], want, 1e-5 * want + 1e-30) << "parameter " << i;
    moved += v_run[i] > 0 && m[i] != 0;
  }
  EXPECT_GT(moved, int64_t(n / 2));

  TrainConfig plain = tuned;
  plain.init = dir / "base/model.safetensors";
  TrainOptions options;
  TrainResult r;
  std::string e = run_training(&plain, false, dir / "plain", options, {}, &r);
  EXPECT_EQ(e.rfind("--init-moments: ", 0), 0u) << e;
  TrainConfig other = tuned;
  other.model_config.n_layers += 1;
  e = run_training(&other, false, dir / "other", options, {}, &r);
  EXPECT_NE(e.find("--init"), std::string::npos) << e;
  TrainConfig no_init = tuned;
  no_init.init.clear();
  EXPECT_EQ(validate(no_init), "--init-moments needs --init: the run whose moments to continue");
}

TEST(Training, DistillingAModelFromItselfLeavesItAsItWas) {
  TempDir dir;
  const std::string data = write_corpus(dir);
  TrainConfig base = tiny_config(data, "fp32", 20);
  train(base, dir / "base");
  TrainConfig tuned = finetune_of(base, dir / "base/model.safetensors", "fp32", 3);
  tuned.adamw.weight_decay = 0;
  tuned.distill = true;
  train(tuned, dir / "self");
  // Same weights, same recipe: the logits agree bit for bit, the KL and its gradient are zero,
  // and AdamW moves nothing.
  std::vector<LogRow> rows;
  ASSERT_EQ(read_log(dir / "self/log.csv", &rows), "");
  ASSERT_EQ(rows.size(), 3u);
  for (const LogRow& r : rows) EXPECT_EQ(r.train_loss, 0.0f) << "step " << r.step;
  nn::LoadedModel before, after;
  ASSERT_EQ(nn::load_model_file(dir / "base/model.safetensors", &before), "");
  ASSERT_EQ(nn::load_model_file(dir / "self/model.safetensors", &after), "");
  EXPECT_EQ(0, std::memcmp(before.model->params().data(), after.model->params().data(),
                           sizeof(float) * size_t(before.model->params().count())));

  // Under MXFP4 casts the model no longer matches its teacher, and learns towards it.
  tuned = finetune_of(base, dir / "base/model.safetensors", "mxfp4", 3);
  tuned.distill = true;
  train(tuned, dir / "mxfp4");
  ASSERT_EQ(read_log(dir / "mxfp4/log.csv", &rows), "");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GT(rows.front().train_loss, 0.0f);
  EXPECT_LT(rows.front().train_loss, 1.0f);  // a KL divergence, not a cross-entropy
}

TEST(TrainConfig, DistillationNeedsAModelToLearnFromAndOlderConfigsLackIt) {
  TrainConfig c = tiny_config("sotu", "fp32", 3);
  c.distill = true;
  EXPECT_NE(validate(c).find("--distill needs --init"), std::string::npos);
  c.init = "/somewhere/model.safetensors";
  EXPECT_EQ(validate(c), "");
  TrainConfig back;
  ASSERT_EQ(parse_train_config_json(train_config_to_json(c), &back), "");
  EXPECT_TRUE(back.distill);
  std::string old = train_config_to_json(c);
  old.replace(old.find("\"distill\":true,"), std::string("\"distill\":true,").size(), "");
  ASSERT_EQ(parse_train_config_json(old, &back), "");
  EXPECT_FALSE(back.distill);
}

TEST(TrainConfig, MicroBatchMustDivideTheBatchAndOlderConfigsLackIt) {
  TrainConfig c = tiny_config("sotu", "fp32", 3);
  c.micro_batch = 3;
  EXPECT_NE(validate(c).find("--micro-batch must divide --batch"), std::string::npos);
  c.micro_batch = 5;
  EXPECT_NE(validate(c), "");
  c.micro_batch = 2;
  EXPECT_EQ(validate(c), "");
  TrainConfig back;
  ASSERT_EQ(parse_train_config_json(train_config_to_json(c), &back), "");
  EXPECT_EQ(back.micro_batch, 2);
  // A config written before micro-batches existed: the whole batch in one pass.
  std::string old = train_config_to_json(c);
  old.replace(old.find("\"micro_batch\":2,"), std::string("\"micro_batch\":2,").size(), "");
  ASSERT_EQ(parse_train_config_json(old, &back), "");
  EXPECT_EQ(back.micro_batch, 0);
  EXPECT_EQ(pass_rows(back), back.batch);
}

// A step can leave weights that give no finite loss, or no finite weights at all, while its own
// loss, taken before the update, was finite: the validation pass after it or the checkpoint
// must end the run with an error rather than report success or keep such weights. A new run
// that fails before its first checkpoint leaves its folder as it found it.
TEST(Training, WeightsThatOverflowEndTheRunWithoutACheckpoint) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 2);
  TrainResult r;
  TrainConfig huge_decay = config;
  huge_decay.adamw.weight_decay = 1e20f;
  huge_decay.checkpoint_every = 100;
  std::string e = run_training(&huge_decay, false, dir / "validated", {}, {}, &r);
  EXPECT_EQ(e, "the validation loss is not finite after step 2");
  // Nothing to resume from: the folder the run made is gone, shards and log with it.
  EXPECT_FALSE(fs::exists(dir / "validated"));

  TrainConfig overflow = config;
  overflow.steps = 10;
  overflow.eval_every = 100;
  overflow.warmup = 1;
  overflow.max_lr = 3e38f;  // lr * (1 + decay * p) passes the float32 range
  overflow.adamw.weight_decay = 100;
  TrainOptions stop;
  stop.stop_at = 1;
  // A folder that was there before stays, with what it held, less what the run added.
  fs::create_directories(dir / "stopped");
  std::ofstream(dir / "stopped/notes.txt") << "mine";
  e = run_training(&overflow, false, dir / "stopped", stop, {}, &r);
  EXPECT_EQ(e, "the weights are not finite after step 1; no checkpoint was written for it");
  std::vector<std::string> left;
  for (const auto& entry : fs::directory_iterator(dir / "stopped")) {
    left.push_back(entry.path().filename());
  }
  EXPECT_EQ(left, std::vector<std::string>{"notes.txt"});
}

TEST(Training, AFinishedRunResumesWithoutSteppingAndARunFolderIsNotReused) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 3);
  train(config, dir / "run");
  const TrainResult again = train(config, dir / "run", true);
  EXPECT_EQ(again.steps_done, 3);
  TrainConfig copy = config;
  TrainResult r;
  EXPECT_NE(run_training(&copy, false, dir / "run", {}, {}, &r).find("--resume"),
            std::string::npos);
  TrainOptions resume;
  resume.resume = true;
  EXPECT_NE(run_training(&copy, false, dir / "empty", resume, {}, &r).find("no checkpoint"),
            std::string::npos);
  copy.steps = 7;
  EXPECT_NE(run_training(&copy, true, dir / "run", resume, {}, &r).find("--steps 3"),
            std::string::npos);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A run killed before its first checkpoint leaves tokenized data behind; a new run into that
// folder with other data must not train on it (it once did, silently).
TEST(RunFolder, ANewRunRetokenizesDataLeftByAnotherRun) {
  TempDir dir;
  const std::string first = write_corpus(dir);
  const std::string second = dir / "other.txt";
  {
    std::ofstream out(second);
    for (int i = 0; i < 3000; ++i) out << "zyx wvu tsr " << i % 7 << "\n";
  }
  train(tiny_config(first, "fp32", 2), dir / "run");
  fs::remove(dir / "run/checkpoint.safetensors");  // as if killed before its first checkpoint
  fs::remove(dir / "run/model.safetensors");
  const std::string shard_before = read_text(dir / "run/data/train.bin");
  train(tiny_config(second, "fp32", 2), dir / "run");
  EXPECT_NE(read_text(dir / "run/data/train.bin"), shard_before);
  EXPECT_NE(read_text(dir / "run/data/source.json").find("other.txt"), std::string::npos);
  // The same data again keeps the shards it already has.
  TrainConfig config = tiny_config(second, "fp32", 2);
  ASSERT_EQ(prepare_run_data(config, dir / "run", false, {}, {}), "");
  // A resume never trains on shards made from anything but its checkpoint's data.
  config.data = first;
  EXPECT_NE(prepare_run_data(config, dir / "run", true, {}, {}).find("was made from"),
            std::string::npos);
}

// Two processes training into one folder would interleave their logs and checkpoints.
TEST(RunFolder, ASecondRunIntoAFolderInUseIsRefused) {
  TempDir dir;
  RunFolderLock held;
  ASSERT_EQ(held.acquire(dir / "run"), "");
  TrainConfig config = tiny_config(write_corpus(dir), "fp32", 2);
  TrainResult r;
  const std::string e = run_training(&config, false, dir / "run", {}, {}, &r);
  EXPECT_EQ(e, dir / "run" + " is in use by another mx train (process " +
                   std::to_string(::getpid()) + ")");
  EXPECT_FALSE(fs::exists(dir / "run/checkpoint.safetensors"));
}

// A resumed run keeps its log's rows up to the checkpoint; a log it cannot read whole is an
// error, since resuming would silently drop the rows (it once did).
TEST(RunFolder, AResumeRefusesADamagedLog) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 6);
  train(config, dir / "run", false, 3);
  const std::string log = read_text(dir / "run/log.csv");
  TrainOptions resume;
  resume.resume = true;
  TrainConfig copy = config;
  TrainResult r;
  std::string damaged = log;
  damaged.replace(damaged.find("\n2,") + 1, 1, "x");
  std::ofstream(dir / "run/log.csv", std::ios::binary) << damaged;
  EXPECT_NE(run_training(&copy, false, dir / "run", resume, {}, &r).find("log.csv:3: malformed"),
            std::string::npos);
  std::ofstream(dir / "run/log.csv", std::ios::binary) << log.substr(0, log.find("\n3,") + 1);
  EXPECT_NE(run_training(&copy, false, dir / "run", resume, {}, &r)
                .find("ends at step 2 but the checkpoint is at step 3"),
            std::string::npos);
  EXPECT_EQ(read_text(dir / "run/log.csv"), log.substr(0, log.find("\n3,") + 1));  // untouched
  std::ofstream(dir / "run/log.csv", std::ios::binary) << log;
  ASSERT_EQ(run_training(&copy, false, dir / "run", resume, {}, &r), "");
  std::vector<LogRow> rows;
  ASSERT_EQ(read_log(dir / "run/log.csv", &rows), "");
  EXPECT_EQ(rows.size(), 6u);
}

// Steps count up from 1: a log whose steps go back, repeat, or leave the range a run can log
// (a float read as a step beyond int64's range was undefined) is damaged.
TEST(RunLog, StepsMustCountUpFromOne) {
  TempDir dir;
  const std::string header = "step,lr,train_loss,grad_norm,val_loss,tokens_per_s,elapsed_s\n";
  const std::string row = ",0.001,5.0,1.0,,100.0,0.1\n";
  const std::string path = dir / "log.csv";
  auto read_steps = [&](std::initializer_list<const char*> steps) {
    std::string text = header;
    for (const char* step : steps) text += std::string(step) + row;
    std::ofstream(path, std::ios::binary) << text;
    std::vector<LogRow> rows;
    return read_log(path, &rows);
  };
  EXPECT_EQ(read_steps({"1", "2", "5"}), "");
  EXPECT_EQ(read_steps({"1", "99999999999999999999"}),
            path + ":3: step 99999999999999999999 does not follow step 1");
  EXPECT_EQ(read_steps({"-5"}), path + ":2: step -5 does not follow step 0");
  EXPECT_EQ(read_steps({"1", "3", "2"}), path + ":4: step 2 does not follow step 3");
  EXPECT_EQ(read_steps({"1", "1.5"}), path + ":3: step 1.5 does not follow step 1");
}

// What a run needs is computed and compared with the memory left before anything is allocated.
TEST(RunFolder, ARunLargerThanMemoryIsRefusedBeforeItStarts) {
  TempDir dir;
  TrainConfig config = tiny_config(write_corpus(dir), "fp32", 2);
  config.batch = 1000000000;
  TrainResult r;
  const std::string e = run_training(&config, false, dir / "run", {}, {}, &r);
  EXPECT_EQ(e.rfind("training tiny with batches of 1000000000 x 32 tokens needs ", 0), 0u) << e;
  EXPECT_NE(e.find("available"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir / "run"));  // refused before the folder is made

  // With micro-batches only one pass's activations are live, and the message names that pass.
  config.batch = 2000000000;
  config.micro_batch = 1000000000;
  const std::string micro = run_training(&config, false, dir / "run", {}, {}, &r);
  EXPECT_EQ(micro.rfind("training tiny with micro-batches of 1000000000 x 32 tokens needs ", 0), 0u)
      << micro;
  EXPECT_FALSE(fs::exists(dir / "run"));
}

TEST(Checkpoint, CorruptedTruncatedAndMismatchedFilesAreRefused) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 3);
  train(config, dir / "run");
  const std::string path = dir / "run/checkpoint.safetensors";
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  nn::Model model(config.model_config);
  nn::Params& params = model.params();
  nn::AdamW optimizer(model, config.adamw);
  Checkpoint checkpoint;
  ASSERT_EQ(checkpoint.open(path), "");
  EXPECT_EQ(train_config_to_json(checkpoint.config()), train_config_to_json(config));
  ASSERT_EQ(checkpoint.load(&params, &optimizer), "");
  EXPECT_EQ(checkpoint.state().step, 3);
  EXPECT_EQ(optimizer.steps(), 3);

  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  std::string flipped = bytes;
  flipped[flipped.size() - 100] ^= 0x01;  // a bit of the optimizer state
  EXPECT_NE(Checkpoint().open(write("flipped", flipped)).find("checksum mismatch"),
            std::string::npos);
  const std::string truncated = bytes.substr(0, bytes.size() - 10);
  EXPECT_NE(Checkpoint().open(write("truncated", truncated)), "");
}

// The checksum covers every metadata entry, the tokenizer and format among them, and every
// reader checks it: a damaged checkpoint cannot be evaluated or exported either.
TEST(Checkpoint, EveryReaderRefusesADamagedFile) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 3);
  train(config, dir / "run");
  std::ifstream in(dir / "run/checkpoint.safetensors", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  auto damaged = [&](const std::string& name, std::string content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  std::string weights = bytes;
  weights[bytes.size() / 3] ^= 0x40;  // a weight's exponent: loss 2e36 once went unnoticed
  std::string tokenizer = bytes;
  tokenizer.replace(tokenizer.find("\"bytes\""), 7, "\"bytez\"");
  std::string format = bytes;
  format.replace(format.find("\"pt\""), 4, "\"np\"");
  for (const std::string& name :
       {damaged("weights.safetensors", weights), damaged("tokenizer.safetensors", tokenizer),
        damaged("format.safetensors", format)}) {
    nn::LoadedModel loaded;
    EXPECT_NE(nn::load_model_file(name, &loaded).find("checksum mismatch"), std::string::npos)
        << name;
    EXPECT_NE(Checkpoint().open(name).find("checksum mismatch"), std::string::npos) << name;
  }
  // The final model file carries a checksum too.
  std::ifstream model_in(dir / "run/model.safetensors", std::ios::binary);
  std::string model((std::istreambuf_iterator<char>(model_in)), {});
  model[model.size() - 5] ^= 0x01;
  nn::LoadedModel loaded;
  EXPECT_NE(
      nn::load_model_file(damaged("model.safetensors", model), &loaded).find("checksum mismatch"),
      std::string::npos);
}

TEST(ModelFile, ExportedModelLoadsWithItsConfigAndTokenizer) {
  TempDir dir;
  nn::ModelConfig c = *nn::model_preset("tiny", nn::Arch::kLlama);
  c.tied = false;
  nn::Model model(c);
  model.params().init(3);
  ASSERT_EQ(nn::save_model_file(dir / "m.safetensors", c, model.params(), "bytes"), "");
  nn::LoadedModel loaded;
  ASSERT_EQ(nn::load_model_file(dir / "m.safetensors", &loaded), "");
  EXPECT_EQ(nn::model_config_to_json(loaded.model->config()), nn::model_config_to_json(c));
  EXPECT_EQ(loaded.tokenizer, "bytes");
  EXPECT_EQ(0, std::memcmp(loaded.model->params().data(), model.params().data(),
                           sizeof(float) * size_t(model.params().count())));
}

// Rewrites a model file's metadata entry `key` to `value`, with a checksum that matches again:
// a hostile writer can always recompute one, so the loader's bounds must hold without it.
void rewrite_metadata(const std::string& from, const std::string& to, const std::string& key,
                      const std::string& value) {
  io::SafetensorsFile file;
  ASSERT_EQ(io::open_safetensors(from, &file), "");
  std::vector<io::TensorToWrite> tensors;
  for (const io::SafetensorsTensor& t : file.tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  }
  std::map<std::string, std::string> meta = file.metadata();
  meta[key] = value;
  io::add_checksum(tensors, &meta);
  ASSERT_EQ(io::write_safetensors(to, tensors, meta), "");
}

// The tiny GPT-2 preset with weights from seed 1, as a model file at `path`.
void save_tiny_model(const std::string& path) {
  const nn::ModelConfig c = *nn::model_preset("tiny", nn::Arch::kGpt2);
  nn::Model model(c);
  model.params().init(1);
  ASSERT_EQ(nn::save_model_file(path, c, model.params(), "bytes"), "");
}

// An "mx.NAME" entry with no parameter NAME describes an MX tensor that the model would never
// read: a damaged or foreign file, refused as the MX readers (inspect, dequantize) refuse it.
TEST(ModelFile, AnMxTensorThatNoParameterReadsIsRefused) {
  TempDir dir;
  const std::string good = dir / "good.safetensors";
  save_tiny_model(good);
  const std::string stray = dir / "stray.safetensors";
  rewrite_metadata(good, stray, "mx.nonexistent.weight",
                   R"({"shape":[32,32],"format":"mxfp4_e2m1","block":32,"axis":-1})");
  nn::LoadedModel loaded;
  EXPECT_EQ(nn::load_model_file(stray, &loaded),
            stray +
                ": MX tensor 'nonexistent.weight' (metadata 'mx.nonexistent.weight') is not a "
                "parameter of this model");
}

// Sizes in a model's config are bounded by what the file holds, before anything is allocated:
// these once crashed (bad_alloc) or ran on with growing memory.
TEST(ModelFile, ConfigsTheFileCannotHoldAreRefusedBeforeAnyAllocation) {
  TempDir dir;
  const nn::ModelConfig c = *nn::model_preset("tiny", nn::Arch::kGpt2);
  const std::string good = dir / "good.safetensors";
  save_tiny_model(good);
  const std::string json = nn::model_config_to_json(c);
  auto with = [&](const std::string& key, const std::string& value) {
    std::string edited = json;
    const size_t at = edited.find("\"" + key + "\":") + key.size() + 3;
    edited.replace(at, edited.find_first_of(",}", at) - at, value);
    const std::string path = dir / (key + value + ".safetensors");
    rewrite_metadata(good, path, std::string(nn::kModelConfigKey), edited);
    nn::LoadedModel loaded;
    return nn::load_model_file(path, &loaded);
  };
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"vocab", "1000000000000", "vocab 1000000000000 exceeds the limit of 16777216"},
      {"dim", "2147483648", "dim 2147483648 exceeds the limit of 65536"},
      {"hidden", "10000000000000", "hidden 10000000000000 exceeds the limit of 262144"},
      {"n_layers", "1000000000", "n_layers 1000000000 exceeds the limit of 4096"},
      {"n_layers", "9223372036854775807", "n_layers 9223372036854775807 exceeds the limit"},
      {"n_layers", "4000", "4000 layers cannot fit in a file of 36 tensors"},
      {"seq_len", "1000000000000", "seq_len 1000000000000 exceeds the limit of 1048576"},
      {"seq_len", "100000",
       "tensor transformer.wpe.weight has shape [64, 64], the model needs [100000, 64]"},
      {"vocab", "1000",
       "tensor transformer.wte.weight has shape [256, 64], the model needs [1000, 64]"},
  };
  for (const auto& [key, value, want] : cases) {
    const std::string e = with(key, value);
    EXPECT_NE(e.find(want), std::string::npos) << key << "=" << value << ": " << e;
  }
  nn::LoadedModel loaded;
  EXPECT_EQ(nn::load_model_file(good, &loaded), "");
}

// A checkpoint's config is bounded the same way, and checked before anything is built from it.
TEST(Checkpoint, ConfigTheFileCannotHoldIsRefusedBeforeAResumeAllocates) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 3);
  train(config, dir / "run");
  TrainConfig huge = config;
  huge.model_config.vocab = 1 << 24;
  const std::string path = dir / "huge.safetensors";
  rewrite_metadata(dir / "run/checkpoint.safetensors", path, "mxkit.train",
                   train_config_to_json(huge));
  rewrite_metadata(path, path, std::string(nn::kModelConfigKey),
                   nn::model_config_to_json(huge.model_config));
  EXPECT_NE(Checkpoint().open(path).find("the model needs [16777216, 64]"), std::string::npos);
}

TEST(ModelFile, ConfigJsonRefusesUnknownMissingAndInvalidFields) {
  nn::ModelConfig c;
  EXPECT_NE(nn::parse_model_config_json(R"({"arch":"gpt2"})", &c), "");
  EXPECT_NE(nn::parse_model_config_json("[1]", &c), "");
  const std::string good = nn::model_config_to_json(*nn::model_preset("tiny", nn::Arch::kGpt2));
  EXPECT_EQ(nn::parse_model_config_json(good, &c), "");
  std::string bad_heads = good;
  bad_heads.replace(bad_heads.find("\"n_heads\":4"), 11, "\"n_heads\":5");
  EXPECT_NE(nn::parse_model_config_json(bad_heads, &c), "");
}

TEST(DirectCast, Fp32CastHasZeroKlAndFullAgreementAndMxfp4Degrades) {
  nn::Model model(*nn::model_preset("tiny", nn::Arch::kGpt2));
  model.params().init(11);
  std::vector<uint32_t> tokens(2000);
  std::mt19937 rng(1);
  for (uint32_t& t : tokens) t = rng() % 256;
  const EvalWindow window{4, 32, 3};
  DirectCastResult same, fp4;
  ASSERT_EQ(direct_cast_eval(model, *nn::recipe_preset("fp32"), data::TokenView::of(tokens), window,
                             &same),
            "");
  EXPECT_EQ(same.tokens, 4 * 32 * 3);
  EXPECT_EQ(same.kl, 0.0);
  EXPECT_EQ(same.top1, 1.0);
  EXPECT_EQ(same.loss, same.reference_loss);
  EXPECT_NEAR(same.ppl, std::exp(same.loss), 1e-9 * same.ppl);
  ASSERT_EQ(direct_cast_eval(model, *nn::recipe_preset("mxfp4"), data::TokenView::of(tokens),
                             window, &fp4),
            "");
  EXPECT_GT(fp4.kl, 0.0);
  EXPECT_EQ(fp4.reference_loss, same.reference_loss);
  EXPECT_EQ(model.recipe().name, "fp32");  // restored
}

std::string stories_dir() {
  const char* d = std::getenv("MX_DATA_DIR");
  return d == nullptr ? "" : std::string(d) + "/stories260K";
}

TEST(Stories260K, EvaluatesNearItsPublishedLossAndMxint8StaysClose) {
  if (stories_dir().empty()) GTEST_SKIP() << "MX_DATA_DIR is not set";
  nn::LoadedModel loaded;
  ASSERT_EQ(nn::load_model_file(stories_dir() + "/stories260K.bin", &loaded), "");
  EXPECT_EQ(loaded.kind, "llama2c");
  ASSERT_EQ(loaded.tokenizer, stories_dir() + "/tok512.bin");
  std::unique_ptr<data::Tokenizer> tok;
  ASSERT_EQ(data::load_tokenizer(loaded.tokenizer, {}, &tok), "");
  std::vector<uint32_t> tokens;
  ASSERT_EQ(load_eval_tokens(stories_dir() + "/tinystories_sample.txt", *tok, {}, EvalSplit::kAll,
                             &tokens),
            "");
  DirectCastResult r;
  ASSERT_EQ(direct_cast_eval(*loaded.model, *nn::recipe_preset("mxint8"),
                             data::TokenView::of(tokens), {4, 128, 0}, &r),
            "");
  // Published validation loss 1.297 on TinyStories; a few stories give a noisier figure.
  EXPECT_LT(r.reference_loss, 2.0);
  EXPECT_LT(r.loss - r.reference_loss, 0.05);
  EXPECT_GT(r.top1, 0.9);
}

TEST(Stories260K, GreedyGenerationContinuesAStoryInWords) {
  if (stories_dir().empty()) GTEST_SKIP() << "MX_DATA_DIR is not set";
  nn::LoadedModel loaded;
  ASSERT_EQ(nn::load_model_file(stories_dir() + "/stories260K.bin", &loaded), "");
  std::unique_ptr<data::Tokenizer> tok;
  ASSERT_EQ(data::load_tokenizer(loaded.tokenizer, {}, &tok), "");
  std::vector<uint32_t> tokens = {*tok->bos_id()};
  for (uint32_t id : tok->encode("Once upon a time")) tokens.push_back(id);
  SampleOptions options;
  options.max_new_tokens = 40;
  options.temperature = 0;
  ASSERT_EQ(generate(*loaded.model, &tokens, options), "");
  EXPECT_EQ(tokens.size(), 1 + tok->encode("Once upon a time").size() + 40);
  const std::string text = tok->decode(tokens);
  // The story goes on with common words of TinyStories.
  EXPECT_NE(text.find("Once upon a time"), std::string::npos) << text;
  int hits = 0;
  for (const char* w : {" there", " was", " little", " a ", " the ", " named", " day"}) {
    hits += text.find(w) != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(hits, 3) << text;
}

}  // namespace
}  // namespace mx::train
