// Token shards of llm.c and modded-nanogpt (FineWeb, TinyStories and the rest as their scripts
// tokenize them): a header of 256 little-endian int32 (magic 20240520, version 1, the token
// count), then the tokens as little-endian uint16 (GPT-2 ids in their datasets).
//
// A folder of them is a corpus already tokenized, which `mx train --data FOLDER` takes as it
// is: files whose names contain "_val_" are the validation split, the other .bin files the
// training split, each in byte-wise name order (fineweb_train_000001.bin, ...).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mx::data {

inline constexpr int32_t kLlmcShardMagic = 20240520;
inline constexpr int64_t kLlmcHeaderBytes = 256 * 4;

struct LlmcShards {
  std::vector<std::filesystem::path> train, validation;
};

// True when `spec` is a folder that holds .bin files and no .txt files: a folder of shards,
// not of documents, and not mx's own (token_shard_folder.h).
bool is_llmc_shard_folder(std::string_view spec);

// The folder's shards by split; an error when either split has none.
std::string find_llmc_shards(const std::filesystem::path& folder, LlmcShards* out);

// Checks a shard's header against its size and appends its tokens, each of which must be below
// `vocab`. Errors name the file.
std::string read_llmc_shard(const std::filesystem::path& path, uint32_t vocab,
                            std::vector<uint32_t>* tokens);

// The token count a shard's header gives, after checking the header against the file's size.
std::string llmc_shard_token_count(const std::filesystem::path& path, int64_t* count);

}  // namespace mx::data
