// mx/train/bench.h: the model-FLOP count against a published figure, and a timed CPU run.
#include <gtest/gtest.h>

#include <cmath>

#include "mx/nn/params.h"
#include "mx/train/bench.h"

namespace mx::train {
namespace {

// GPT-2 124M has 124,439,808 parameters (vocabulary 50,257); llm.c pads the vocabulary to
// 50,304 and reports 803.5 MFLOP per token at T = 1024 (6N + 6LCT, N all parameters). The
// count here must agree with both, since MFU figures are compared with llm.c's.
TEST(BenchTraining, CountsGpt2ModelFlopsAsLlmCDoes) {
  nn::ModelConfig gpt2 = *nn::model_preset("gpt2-124m", nn::Arch::kGpt2);
  EXPECT_EQ(nn::Params(gpt2, false).count(), 124439808);
  gpt2.vocab = 50304;
  const int64_t padded = nn::Params(gpt2, false).count();
  EXPECT_NEAR(training_flops_per_token(gpt2, padded, 1024), 803.5e6, 0.05e6);
}

TEST(BenchTraining, TimesWholeStepsOnTheCpu) {
  BenchConfig c;
  c.model = *nn::model_preset("tiny", nn::Arch::kLlama);
  c.recipe = *nn::recipe_preset("mxfp6");
  c.batch = 4;
  c.micro_batch = 2;
  c.seq_len = 32;
  c.steps = 2;
  c.warmup = 1;
  BenchResult r;
  ASSERT_EQ(bench_training(c, &r), "");
  EXPECT_EQ(r.tokens_per_step, 4 * 32);
  EXPECT_GT(r.tokens_per_s, 0);
  EXPECT_NEAR(r.tokens_per_s * r.seconds_per_step, double(r.tokens_per_step), 1e-6 * 128);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  EXPECT_GT(r.peak_memory, 0);
  EXPECT_NE(r.device.find("CPU"), std::string::npos);
  c.micro_batch = 3;
  EXPECT_NE(bench_training(c, &r), "");
}

}  // namespace
}  // namespace mx::train
