// Training end to end: a tiny GPT-2 on the bytes of tinyshakespeare ($MX_DATA_DIR; skipped
// when unset) must get well below the unigram entropy; an mxfp4 step runs.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

#include "mx/data/batch_sampler.h"
#include "mx/nn/adamw.h"
#include "mx/nn/model.h"

namespace mx::nn {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<uint32_t> shakespeare_bytes() {
  const char* dir = std::getenv("MX_DATA_DIR");
  if (dir == nullptr) return {};
  std::ifstream in(std::string(dir) + "/tinyshakespeare/input.txt", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<uint32_t> tokens;
  for (unsigned char c : text) tokens.push_back(c);
  return tokens;
}

// Entropy (nats) of the byte frequencies of `tokens`: the loss of the best unigram model.
double unigram_entropy(const std::vector<uint32_t>& tokens) {
  std::vector<double> count(256, 0.0);
  for (uint32_t t : tokens) count[t] += 1.0;
  double h = 0.0;
  for (double c : count) {
    if (c > 0) h -= c / double(tokens.size()) * std::log(c / double(tokens.size()));
  }
  return h;
}

// One optimizer step on a sampled batch; returns the training loss.
float train_step(Model& model, AdamW& opt, const LrSchedule& lr, data::TokenView train,
                 data::SamplerState* sampler, int64_t b, int64_t t, int64_t step) {
  data::Batch batch;
  EXPECT_EQ(data::sample_batch(train, b, t, sampler, &batch), "");
  model.set_step(uint64_t(step));
  model.zero_grad();
  float loss = 0;
  EXPECT_EQ(model.forward(batch.inputs.data(), batch.targets.data(), b, t, &loss, {true}), "");
  EXPECT_EQ(model.backward(), "");
  clip_grad_norm(model, 1.0);
  opt.step(model, lr.at(step));
  return loss;
}

double evaluate(Model& model, data::TokenView val, int64_t b, int64_t t, int64_t max_batches) {
  double total = 0.0;
  int64_t rows = 0;
  const int64_t batches = std::min(max_batches, data::eval_batch_count(val, b, t));
  for (int64_t i = 0; i < batches; ++i) {
    data::Batch batch;
    EXPECT_EQ(data::eval_batch(val, b, t, i, &batch), "");
    float loss = 0;
    EXPECT_EQ(model.forward(batch.inputs.data(), batch.targets.data(), batch.rows, t, &loss), "");
    total += loss * batch.rows;
    rows += batch.rows;
  }
  return total / double(rows);
}

struct TrainResult {
  double entropy = 0.0, initial = 0.0, final_val = 0.0;
};

// Trains a tiny model of `arch` on 90% of the bytes and evaluates on the first 16 batches of
// 16 x 64 bytes of the other 10%.
TrainResult train_tiny(Arch arch, int64_t steps, const std::vector<uint32_t>& tokens) {
  const size_t split = tokens.size() * 9 / 10;
  const std::vector<uint32_t> train_tokens(tokens.begin(), tokens.begin() + split);
  const std::vector<uint32_t> val_tokens(tokens.begin() + split, tokens.end());
  const data::TokenView train = data::TokenView::of(train_tokens);
  const data::TokenView val = data::TokenView::of(val_tokens);
  TrainResult r;
  r.entropy = unigram_entropy(val_tokens);
  Model model(*model_preset("tiny", arch));
  model.params().init(1);
  AdamW opt(model, AdamWConfig{});
  const int64_t b = 8, t = 64;
  const LrSchedule lr{3e-3f, 3e-4f, 20, steps};
  data::SamplerState sampler{.seed = 123, .draws = 0};
  r.initial = evaluate(model, val, 16, t, 16);
  const auto start = Clock::now();
  float loss = 0.0f;
  for (int64_t step = 0; step < steps; ++step) {
    loss = train_step(model, opt, lr, train, &sampler, b, t, step);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.final_val = evaluate(model, val, 16, t, 16);
  std::printf(
      "%s: unigram entropy %.3f nats; val loss %.3f -> %.3f (train %.3f) in %lld steps, "
      "%.1f s, %.0f tokens/s\n",
      std::string(arch_name(arch)).c_str(), r.entropy, r.initial, r.final_val, loss,
      (long long)steps, seconds, double(steps * b * t) / seconds);
  // A few tokens sampled from the trained model are bytes.
  uint64_t rng = 9;
  std::vector<uint32_t> context = {'T', 'h', 'e'};
  EXPECT_EQ(model.forward(context.data(), nullptr, 1, 3), "");
  EXPECT_LT(sample_token(model.logits() + 2 * 256, 256, 10, 0.8f, &rng), 256u);
  return r;
}

// Bytes of English text have a unigram entropy near 3.3 nats; a model that uses context
// (bigram statistics alone reach ~2.5) must beat it by a wide margin.
TEST(NnTrain, TinyGpt2LearnsShakespeareBytes) {
  const std::vector<uint32_t> tokens = shakespeare_bytes();
  if (tokens.empty()) GTEST_SKIP() << "MX_DATA_DIR is not set";
  const TrainResult r = train_tiny(Arch::kGpt2, 250, tokens);
  EXPECT_NEAR(r.initial, std::log(256.0), 0.1);
  EXPECT_LT(r.final_val, r.entropy - 0.6);
}

TEST(NnTrain, TinyLlamaLearnsShakespeareBytes) {
  const std::vector<uint32_t> tokens = shakespeare_bytes();
  if (tokens.empty()) GTEST_SKIP() << "MX_DATA_DIR is not set";
  const TrainResult r = train_tiny(Arch::kLlama, 250, tokens);
  EXPECT_NEAR(r.initial, std::log(256.0), 0.1);
  EXPECT_LT(r.final_val, r.entropy - 0.4);
}

TEST(NnTrain, Mxfp4StepRuns) {
  std::vector<uint32_t> tokens(2000);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = uint32_t((i * i + 3 * i) % 97);
  Model model(*model_preset("tiny", Arch::kLlama));
  model.params().init(2);
  model.set_recipe(*recipe_preset("mxfp4"));
  AdamW opt(model, AdamWConfig{});
  const std::vector<float> before(model.params().data(),
                                  model.params().data() + model.params().size());
  data::SamplerState sampler{.seed = 1, .draws = 0};
  const float loss = train_step(model, opt, LrSchedule{1e-3f, 1e-4f, 0, 10},
                                data::TokenView::of(tokens), &sampler, 4, 32, 0);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, std::log(256.0), 0.5);
  EXPECT_TRUE(std::isfinite(global_grad_norm(model)));
  EXPECT_NE(std::vector<float>(model.params().data(), model.params().data() + before.size()),
            before);
}

}  // namespace
}  // namespace mx::nn
