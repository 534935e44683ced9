#include "mx/data/llmc_shards.h"

#include <algorithm>
#include <cstring>
#include <fstream>

#include "mx/data/token_shard_folder.h"
#include "mx/io/cat.h"

namespace mx::data {

namespace fs = std::filesystem;
using io::cat;

namespace {

int32_t int32_at(const char* bytes, int index) {
  uint32_t v = 0;
  for (int b = 3; b >= 0; --b) v = (v << 8) | uint8_t(bytes[4 * index + b]);
  return int32_t(v);
}

// Opens `path` and checks its header against its size; leaves the stream after the header.
std::string open_shard(const fs::path& path, std::ifstream* in, int64_t* count) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return cat(path.string(), ": not a regular file");
  const auto size = int64_t(fs::file_size(path, ec));
  if (ec) return cat(path.string(), ": ", ec.message());
  in->open(path, std::ios::binary);
  char header[kLlmcHeaderBytes];
  if (!*in || size < kLlmcHeaderBytes || !in->read(header, kLlmcHeaderBytes)) {
    return cat(path.string(), ": shorter than an llm.c shard's 1024-byte header");
  }
  if (int32_at(header, 0) != kLlmcShardMagic) {
    return cat(path.string(), ": not an llm.c token shard (magic ", int32_at(header, 0),
               ", expected ", kLlmcShardMagic, ")");
  }
  if (int32_at(header, 1) != 1) {
    return cat(path.string(), ": llm.c shard version ", int32_at(header, 1),
               " (only version 1, uint16 tokens, is read)");
  }
  const int64_t tokens = int32_at(header, 2);
  if (tokens < 0 || size != kLlmcHeaderBytes + 2 * tokens) {
    return cat(path.string(), ": the header gives ", tokens, " tokens, but ",
               size - kLlmcHeaderBytes, " bytes follow it");
  }
  *count = tokens;
  return "";
}

}  // namespace

bool is_llmc_shard_folder(std::string_view spec) {
  std::error_code ec;
  const fs::path folder(spec);
  // mx's own shards (train.bin, val.bin) are .bin files too, of another format.
  if (!fs::is_directory(folder, ec) || is_token_shard_folder(folder)) return false;
  bool bins = false;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".txt") return false;
    bins = bins || entry.path().extension() == ".bin";
  }
  return bins;
}

std::string find_llmc_shards(const fs::path& folder, LlmcShards* out) {
  std::error_code ec;
  LlmcShards shards;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().extension() != ".bin") continue;
    const bool validation = entry.path().filename().string().find("_val_") != std::string::npos;
    (validation ? shards.validation : shards.train).push_back(entry.path());
  }
  if (ec) return cat("cannot list ", folder.string(), ": ", ec.message());
  if (shards.train.empty() || shards.validation.empty()) {
    return cat(folder.string(), " holds no llm.c ",
               shards.train.empty() ? "training" : "validation",
               " shards (validation files have \"_val_\" in their names, training files the "
               "other .bin files)");
  }
  std::sort(shards.train.begin(), shards.train.end());
  std::sort(shards.validation.begin(), shards.validation.end());
  *out = std::move(shards);
  return "";
}

std::string llmc_shard_token_count(const fs::path& path, int64_t* count) {
  std::ifstream in;
  return open_shard(path, &in, count);
}

std::string read_llmc_shard(const fs::path& path, uint32_t vocab, std::vector<uint32_t>* tokens) {
  std::ifstream in;
  int64_t count = 0;
  if (std::string e = open_shard(path, &in, &count); !e.empty()) return e;
  std::vector<char> bytes(size_t(2 * count));
  if (!in.read(bytes.data(), std::streamsize(bytes.size()))) {
    return cat(path.string(), ": cannot read its tokens");
  }
  tokens->reserve(tokens->size() + size_t(count));
  for (int64_t i = 0; i < count; ++i) {
    const uint32_t t = uint8_t(bytes[2 * i]) | uint32_t(uint8_t(bytes[2 * i + 1])) << 8;
    if (t >= vocab) {
      return cat(path.string(), ": token ", t, " at position ", i,
                 " is not below the tokenizer's vocabulary of ", vocab);
    }
    tokens->push_back(t);
  }
  return "";
}

}  // namespace mx::data
