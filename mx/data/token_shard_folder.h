// A folder of token shards as `mx tokenizer shards` writes it: DIR/train.bin and DIR/val.bin
// (token_shard.h), a corpus tokenized once for many runs. `mx train --data DIR` copies both
// splits into its run folder and `mx eval --data DIR` reads them, in place of tokenizing text.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "mx/data/token_shard.h"

namespace mx::data {

// True when `folder` holds a train.bin that begins with the token shard's magic (a folder of
// llm.c shards holds other .bin files, whose magic differs).
bool is_token_shard_folder(const std::filesystem::path& folder);

// Opens both splits, each checked whole, and checks that their vocabulary fits within `vocab`
// (the tokenizer's), so that every token has an embedding row.
std::string open_token_shard_folder(const std::filesystem::path& folder, uint32_t vocab,
                                    TokenShard* train, TokenShard* validation);

// Copies both splits into `dir` after open_token_shard_folder's checks; each file appears whole
// or not at all.
std::string copy_token_shard_folder(const std::filesystem::path& folder, uint32_t vocab,
                                    const std::filesystem::path& dir);

}  // namespace mx::data
