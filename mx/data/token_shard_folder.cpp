#include "mx/data/token_shard_folder.h"

#include <cstring>
#include <fstream>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"

namespace mx::data {

namespace fs = std::filesystem;
using io::cat;

bool is_token_shard_folder(const fs::path& folder) {
  std::ifstream in(folder / "train.bin", std::ios::binary);
  char magic[sizeof kShardMagic] = {};
  return in.read(magic, sizeof magic) && std::memcmp(magic, kShardMagic, sizeof magic) == 0;
}

std::string open_token_shard_folder(const fs::path& folder, uint32_t vocab, TokenShard* train,
                                    TokenShard* validation) {
  for (const auto& [shard, name] :
       {std::pair{train, "train.bin"}, std::pair{validation, "val.bin"}}) {
    const fs::path path = folder / name;
    if (std::string e = open_shard(path, shard); !e.empty()) return e;
    if (shard->header().vocab_size > vocab) {
      return cat(path.string(), ": its tokens are of a vocabulary of ", shard->header().vocab_size,
                 ", larger than the tokenizer's ", vocab,
                 " (--tokenizer: the one the shards were made with)");
    }
  }
  return "";
}

std::string copy_token_shard_folder(const fs::path& folder, uint32_t vocab, const fs::path& dir) {
  TokenShard train, validation;
  if (std::string e = open_token_shard_folder(folder, vocab, &train, &validation); !e.empty()) {
    return e;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return cat("cannot create ", dir.string(), ": ", ec.message());
  // The copies are of the bytes just checked, read once.
  for (const auto& [shard, name] :
       {std::pair{&train, "train.bin"}, std::pair{&validation, "val.bin"}}) {
    io::OutputFile out;
    if (std::string e = out.open((dir / name).string()); !e.empty()) return e;
    if (std::string e = out.write(shard->file_bytes()); !e.empty()) return e;
    if (std::string e = out.commit(); !e.empty()) return e;
  }
  return "";
}

}  // namespace mx::data
