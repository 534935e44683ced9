// From a corpus and a tokenizer to the two shards a training run reads: train.bin and
// val.bin (token_shard.h).
//
// Each document is encoded on its own and preceded by the tokenizer's BOS (GPT-2:
// <|endoftext|>), so the model sees where documents start and no BPE merge crosses them. The
// validation split is the corpus's validation files when it has them (wikitext2), else the
// last kValidationFraction of the tokens (corpus.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "mx/data/corpus.h"
#include "mx/data/tokenizer.h"

namespace mx::data {

std::vector<uint32_t> encode_documents(const Tokenizer& tokenizer,
                                       std::span<const std::string> documents);

// Tokens of a split held out from the end of `total`: floor(total * fraction).
uint64_t tail_validation_count(uint64_t total, double fraction);

// The corpus encoded and split as above (train, then validation tokens).
std::string encode_splits(const Corpus& corpus, const Tokenizer& tokenizer,
                          std::vector<uint32_t>* train, std::vector<uint32_t>* validation);

struct TokenDatasetSummary {
  std::filesystem::path train_path, validation_path;  // out_dir/train.bin, out_dir/val.bin
  uint64_t train_tokens = 0, validation_tokens = 0;
  uint32_t vocab_size = 0;
};

// Creates out_dir if needed; each shard is written atomically.
std::string write_token_dataset(const Corpus& corpus, const Tokenizer& tokenizer,
                                const std::filesystem::path& out_dir, TokenDatasetSummary* summary);

}  // namespace mx::data
