// Training runs end to end: checkpoints, bit-exact resume, model files, direct-cast
// evaluation and generation. Runs train a tiny GPT for a few steps on generated text in a
// temporary folder; the stories260K checks need $MX_DATA_DIR and skip without it.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "mx/data/byte_tokenizer.h"
#include "mx/io/safetensors.h"
#include "mx/nn/model_file.h"
#include "mx/train/checkpoint.h"
#include "mx/train/eval_data.h"
#include "mx/train/evaluate.h"
#include "mx/train/generate.h"
#include "mx/train/run_log.h"
#include "mx/train/trainer.h"

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

TrainConfig tiny_config(const std::string& data, const std::string& recipe, int64_t steps) {
  TrainConfig c;
  c.model_config = *nn::model_preset("tiny", nn::Arch::kGpt2);
  c.model_config.n_layers = 1;
  c.model_config.seq_len = 32;
  c.recipe = *nn::recipe_preset(recipe);
  c.data = data;
  c.tokenizer = "bytes";
  c.steps = steps;
  c.batch = 4;
  c.seq_len = 32;
  c.warmup = 2;
  c.eval_every = 4;
  c.eval_batches = 2;
  c.checkpoint_every = 3;
  return c;
}

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

TEST(Checkpoint, CorruptedTruncatedAndMismatchedFilesAreRefused) {
  TempDir dir;
  const TrainConfig config = tiny_config(write_corpus(dir), "fp32", 3);
  train(config, dir / "run");
  const std::string path = dir / "run/checkpoint.safetensors";
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  nn::Params params(config.model_config);
  nn::AdamW optimizer(params, config.adamw);
  RunState state;
  ASSERT_EQ(load_checkpoint(path, config, &params, &optimizer, &state), "");
  EXPECT_EQ(state.step, 3);
  EXPECT_EQ(optimizer.steps(), 3);

  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  std::string flipped = bytes;
  flipped[flipped.size() - 100] ^= 0x01;  // a bit of the optimizer state
  EXPECT_NE(load_checkpoint(write("flipped", flipped), config, &params, &optimizer, &state)
                .find("checksum"),
            std::string::npos);
  const std::string truncated = bytes.substr(0, bytes.size() - 10);
  EXPECT_NE(load_checkpoint(write("truncated", truncated), config, &params, &optimizer, &state),
            "");
  TrainConfig other = config;
  other.max_lr = 1e-4f;
  EXPECT_NE(load_checkpoint(path, other, &params, &optimizer, &state).find("settings differ"),
            std::string::npos);
  TrainConfig read;
  EXPECT_EQ(read_checkpoint_config(path, &read), "");
  EXPECT_EQ(train_config_to_json(read), train_config_to_json(config));
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
  const DirectCastResult same =
      direct_cast_eval(model, *nn::recipe_preset("fp32"), data::TokenView::of(tokens), window);
  EXPECT_EQ(same.tokens, 4 * 32 * 3);
  EXPECT_EQ(same.kl, 0.0);
  EXPECT_EQ(same.top1, 1.0);
  EXPECT_EQ(same.loss, same.reference_loss);
  EXPECT_NEAR(same.ppl, std::exp(same.loss), 1e-9 * same.ppl);
  const DirectCastResult fp4 =
      direct_cast_eval(model, *nn::recipe_preset("mxfp4"), data::TokenView::of(tokens), window);
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
  const DirectCastResult r = direct_cast_eval(*loaded.model, *nn::recipe_preset("mxint8"),
                                              data::TokenView::of(tokens), {4, 128, 0});
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
  EXPECT_EQ(generate(*loaded.model, &tokens, options), 40);
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
