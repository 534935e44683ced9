// Data-parallel training runs end to end on the CPU: ranks as threads (nn::ThreadGroup), each
// calling run_training with the same settings and folder. Against one rank whose micro-batches
// are the ranks' slices (the same passes, stochastic-rounding keys and data), the losses agree
// within float32 rounding; rank 0 writes a checkpoint that resumes on the same number of ranks
// bit for bit, and on one rank too.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "mx/nn/thread_communicator.h"
#include "mx/train/run_log.h"
#include "mx/train/trainer.h"
#include "tests/temp_dir.h"
#include "tests/tiny_run.h"

namespace mx::train {
namespace {

std::string write_corpus(const std::filesystem::path& dir) {
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += "a shared scale per block of thirty-two, line " + std::to_string(i % 23) + ".\n";
  }
  const std::string path = (dir / "corpus.txt").string();
  std::ofstream(path) << text;
  return path;
}

// `world` thread ranks training config in run_dir; the errors each rank returned.
std::vector<std::string> train_on_ranks(const TrainConfig& config, const std::string& run_dir,
                                        int world, bool resume = false,
                                        std::optional<int64_t> stop_at = std::nullopt) {
  nn::ThreadGroup group(world);
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<nn::Communicator> comm = group.member(r);
      TrainConfig c = config;
      TrainOptions options;
      options.resume = resume;
      options.stop_at = stop_at;
      options.threads = 1;
      options.comm = comm.get();
      TrainResult result;
      errors[size_t(r)] = run_training(&c, false, run_dir, options, {}, &result);
    });
  }
  for (std::thread& t : threads) t.join();
  return errors;
}

std::string train_one_rank(TrainConfig config, const std::string& run_dir, bool resume = false) {
  TrainOptions options;
  options.resume = resume;
  options.threads = 1;
  TrainResult result;
  return run_training(&config, false, run_dir, options, {}, &result);
}

std::vector<LogRow> log_of(const std::string& run_dir) {
  std::vector<LogRow> rows;
  EXPECT_EQ(read_log(run_dir + "/log.csv", &rows), "");
  return rows;
}

TrainConfig settings(const std::string& corpus) {
  TrainConfig c = test::tiny_config(corpus, "mxfp6", 6);
  c.batch = 4;
  c.eval_every = 3;
  c.checkpoint_every = 3;
  return c;
}

// The ranks' gradients are the one rank's passes summed in another order (float32 rounding,
// carried by AdamW into the weights at about 1e-6 per step on this model): losses and norms agree
// to 1e-4 where a missing slice or a wrong scale would move them by far more.
TEST(DataParallelTraining, TwoThreadRanksTrainAsOneRankWithTheirSlicesAsMicroBatches) {
  test::TempDir dir("mx_dp_train");
  const std::string corpus = write_corpus(dir.path);
  TrainConfig one = settings(corpus);
  one.micro_batch = 2;
  ASSERT_EQ(train_one_rank(one, (dir.path / "one").string()), "");
  const std::string dp = (dir.path / "dp").string();
  for (const std::string& e : train_on_ranks(settings(corpus), dp, 2)) ASSERT_EQ(e, "");
  const std::vector<LogRow> a = log_of((dir.path / "one").string()), b = log_of(dp);
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].step, a[i].step);
    EXPECT_EQ(b[i].lr, a[i].lr);
    EXPECT_NEAR(b[i].train_loss, a[i].train_loss, 1e-4) << "step " << i + 1;
    EXPECT_NEAR(b[i].grad_norm, a[i].grad_norm, 1e-4 * a[i].grad_norm) << "step " << i + 1;
    EXPECT_EQ(b[i].val_loss.has_value(), a[i].val_loss.has_value());
    if (a[i].val_loss && b[i].val_loss) {
      EXPECT_NEAR(*b[i].val_loss, *a[i].val_loss, 1e-4);
    }
  }
  EXPECT_TRUE(std::filesystem::exists(dp + "/model.safetensors"));
  EXPECT_TRUE(std::filesystem::exists(dp + "/checkpoint.safetensors"));
}

TEST(DataParallelTraining, ACheckpointOfTwoRanksResumesOnTwoBitForBitAndOnOne) {
  test::TempDir dir("mx_dp_resume");
  const std::string corpus = write_corpus(dir.path);
  const std::string straight = (dir.path / "straight").string();
  for (const std::string& e : train_on_ranks(settings(corpus), straight, 2)) ASSERT_EQ(e, "");
  const std::string resumed = (dir.path / "resumed").string();
  for (const std::string& e : train_on_ranks(settings(corpus), resumed, 2, false, 3)) {
    ASSERT_EQ(e, "");
  }
  std::filesystem::copy(resumed, (dir.path / "on_one").string(),
                        std::filesystem::copy_options::recursive);
  for (const std::string& e : train_on_ranks(settings(corpus), resumed, 2, true)) {
    ASSERT_EQ(e, "");
  }
  const std::vector<LogRow> a = log_of(straight), b = log_of(resumed);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].train_loss, a[i].train_loss) << "step " << i + 1;
    EXPECT_EQ(b[i].grad_norm, a[i].grad_norm) << "step " << i + 1;
  }
  // One rank takes over the state of two (micro-batches of the two slices): close, not equal.
  TrainConfig one = settings(corpus);
  one.micro_batch = 2;
  ASSERT_EQ(train_one_rank(one, (dir.path / "on_one").string(), true), "");
  const std::vector<LogRow> c = log_of((dir.path / "on_one").string());
  ASSERT_EQ(c.size(), a.size());
  for (size_t i = 3; i < a.size(); ++i) EXPECT_NEAR(c[i].train_loss, a[i].train_loss, 1e-4);
}

TEST(DataParallelTraining, ABatchThatDoesNotDivideStopsEveryRankWithOneLine) {
  test::TempDir dir("mx_dp_refuse");
  TrainConfig c = settings(write_corpus(dir.path));
  c.batch = 5;
  const std::vector<std::string> errors = train_on_ranks(c, (dir.path / "r").string(), 2);
  EXPECT_EQ(errors[0], "--batch 5 does not divide among 2 GPUs");
  EXPECT_EQ(errors[1], "--batch 5 does not divide among 2 GPUs");
}

}  // namespace
}  // namespace mx::train
