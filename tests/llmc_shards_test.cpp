// llm.c / modded-nanogpt token shards: a small writer here makes them as their scripts do
// (256 int32 header: magic 20240520, version 1, count; then uint16 tokens), and mx reads them
// as a corpus already tokenized.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mx/data/byte_tokenizer.h"
#include "mx/data/llmc_shards.h"
#include "mx/data/token_shard.h"
#include "mx/nn/model_config.h"
#include "mx/train/eval_data.h"
#include "mx/train/trainer.h"
#include "tests/temp_dir.h"

namespace mx::data {
namespace {

namespace fs = std::filesystem;

using test::TempDir;

void put_int32(std::string* out, int32_t v) {
  for (int b = 0; b < 4; ++b) out->push_back(char((uint32_t(v) >> (8 * b)) & 0xff));
}

// The header fields may be set wrong on purpose.
void write_llmc(const fs::path& path, const std::vector<uint16_t>& tokens,
                int32_t magic = kLlmcShardMagic, int32_t version = 1,
                std::optional<int32_t> count = std::nullopt) {
  std::string bytes;
  put_int32(&bytes, magic);
  put_int32(&bytes, version);
  put_int32(&bytes, count.value_or(int32_t(tokens.size())));
  bytes.resize(kLlmcHeaderBytes, '\0');
  for (uint16_t t : tokens) {
    bytes.push_back(char(t & 0xff));
    bytes.push_back(char(t >> 8));
  }
  std::ofstream(path, std::ios::binary) << bytes;
}

std::vector<uint16_t> tokens_from(uint16_t first, int n, uint16_t modulus) {
  std::vector<uint16_t> t;
  for (int i = 0; i < n; ++i) t.push_back(uint16_t((first + 7 * i) % modulus));
  return t;
}

TEST(LlmcShards, TokensAreReadInOrderAcrossShards) {
  TempDir dir;
  write_llmc(dir.path / "a.bin", {1, 2, 50256});
  write_llmc(dir.path / "b.bin", {65535, 0});
  std::vector<uint32_t> tokens;
  ASSERT_EQ(read_llmc_shard(dir.path / "a.bin", 65536, &tokens), "");
  ASSERT_EQ(read_llmc_shard(dir.path / "b.bin", 65536, &tokens), "");
  EXPECT_EQ(tokens, (std::vector<uint32_t>{1, 2, 50256, 65535, 0}));
}

TEST(LlmcShards, DamagedShardsAreRefusedNamingTheFile) {
  TempDir dir;
  const fs::path p = dir.path / "s.bin";
  std::vector<uint32_t> tokens;
  auto error = [&] { return read_llmc_shard(p, 50257, &tokens); };
  write_llmc(p, {1, 2, 3}, 20240521);
  EXPECT_EQ(error(), p.string() + ": not an llm.c token shard (magic 20240521, expected 20240520)");
  write_llmc(p, {1, 2, 3}, kLlmcShardMagic, 2);
  EXPECT_EQ(error(),
            p.string() + ": llm.c shard version 2 (only version 1, uint16 tokens, is read)");
  write_llmc(p, {1, 2, 3}, kLlmcShardMagic, 1, 4);
  EXPECT_EQ(error(), p.string() + ": the header gives 4 tokens, but 6 bytes follow it");
  write_llmc(p, {1, 2, 3}, kLlmcShardMagic, 1, -5);
  EXPECT_EQ(error(), p.string() + ": the header gives -5 tokens, but 6 bytes follow it");
  write_llmc(p, {1, 2, 3}, kLlmcShardMagic, 1, 2147483647);
  EXPECT_EQ(error(), p.string() + ": the header gives 2147483647 tokens, but 6 bytes follow it");
  std::ofstream(p, std::ios::binary) << "short";
  EXPECT_EQ(error(), p.string() + ": shorter than an llm.c shard's 1024-byte header");
  write_llmc(p, {1, 50257, 3});
  EXPECT_EQ(error(), p.string() +
                         ": token 50257 at position 1 is not below the tokenizer's vocabulary of "
                         "50257");
  EXPECT_NE(read_llmc_shard(dir.path, 50257, &tokens), "");  // a folder
}

TEST(LlmcShards, AFolderSplitsByValInTheNameAndTextFoldersAreNotShards) {
  TempDir dir;
  EXPECT_FALSE(is_llmc_shard_folder(dir.path.string()));  // empty
  write_llmc(dir.path / "fineweb_train_000002.bin", {5});
  write_llmc(dir.path / "fineweb_train_000001.bin", {4});
  EXPECT_TRUE(is_llmc_shard_folder(dir.path.string()));
  LlmcShards shards;
  EXPECT_NE(find_llmc_shards(dir.path, &shards).find("holds no llm.c validation shards"),
            std::string::npos);
  write_llmc(dir.path / "fineweb_val_000000.bin", {3});
  ASSERT_EQ(find_llmc_shards(dir.path, &shards), "");
  ASSERT_EQ(shards.train.size(), 2u);
  EXPECT_EQ(shards.train[0].filename(), "fineweb_train_000001.bin");
  EXPECT_EQ(shards.validation.at(0).filename(), "fineweb_val_000000.bin");
  std::ofstream(dir.path / "notes.txt") << "a text corpus folder";
  EXPECT_FALSE(is_llmc_shard_folder(dir.path.string()));
  EXPECT_FALSE(is_llmc_shard_folder((dir.path / "fineweb_val_000000.bin").string()));
  // mx's own shards are .bin files too, but not llm.c's.
  const fs::path own = dir.path / "own";
  fs::create_directories(own);
  ASSERT_EQ(write_shard(own / "train.bin", std::vector<uint32_t>{1, 2}, 256), "");
  ASSERT_EQ(write_shard(own / "val.bin", std::vector<uint32_t>{3}, 256), "");
  EXPECT_FALSE(is_llmc_shard_folder(own.string()));
}

// A tiny run trains on a folder of shards as it would on text, with the tokens as they are.
TEST(LlmcShards, TrainingReadsAFolderOfShards) {
  TempDir dir;
  const fs::path data = dir.path / "shards";
  fs::create_directories(data);
  write_llmc(data / "tiny_train_000001.bin", tokens_from(1, 3000, 256));
  write_llmc(data / "tiny_train_000002.bin", tokens_from(2, 3000, 256));
  write_llmc(data / "tiny_val_000000.bin", tokens_from(3, 500, 256));
  train::TrainConfig c;
  c.model_config = *nn::model_preset("tiny", nn::Arch::kGpt2);
  c.model_config.n_layers = 1;
  c.model_config.seq_len = 32;
  c.recipe = *nn::recipe_preset("fp32");
  c.data = data.string();
  c.tokenizer = "bytes";
  c.steps = 3;
  c.batch = 2;
  c.seq_len = 32;
  c.warmup = 1;
  c.eval_every = 3;
  c.eval_batches = 1;
  c.checkpoint_every = 3;
  train::TrainResult result;
  ASSERT_EQ(train::run_training(&c, true, (dir.path / "run").string(), {}, {}, &result), "");
  EXPECT_EQ(result.steps_done, 3);
  TokenShard train_shard, val_shard;
  ASSERT_EQ(open_shard(dir.path / "run/data/train.bin", &train_shard), "");
  ASSERT_EQ(open_shard(dir.path / "run/data/val.bin", &val_shard), "");
  ASSERT_EQ(train_shard.tokens().size(), 6000u);
  EXPECT_EQ(train_shard.tokens()[0], 1u);
  EXPECT_EQ(train_shard.tokens()[3000], 2u);  // the second shard follows the first
  EXPECT_EQ(val_shard.tokens().size(), 500u);
  EXPECT_EQ(val_shard.tokens()[1], 10u);
}

TEST(LlmcShards, EvaluationReadsTheValidationShardsOrAll) {
  TempDir dir;
  write_llmc(dir.path / "d_train_000001.bin", {1, 2});
  write_llmc(dir.path / "d_val_000000.bin", {3, 4, 5});
  const std::unique_ptr<Tokenizer> bytes = make_byte_tokenizer();
  std::vector<uint32_t> tokens;
  ASSERT_EQ(train::load_eval_tokens(dir.path.string(), *bytes, {}, train::EvalSplit::kValidation,
                                    &tokens),
            "");
  EXPECT_EQ(tokens, (std::vector<uint32_t>{3, 4, 5}));
  ASSERT_EQ(train::load_eval_tokens(dir.path.string(), *bytes, {}, train::EvalSplit::kAll, &tokens),
            "");
  EXPECT_EQ(tokens, (std::vector<uint32_t>{1, 2, 3, 4, 5}));
}

}  // namespace
}  // namespace mx::data
