// Token shards: a corpus after tokenization, one file per split, read by memory mapping.
//
// Layout (all little-endian), 40-byte header then the payload:
//   offset  0  8 bytes  magic "MXTOKENS"
//   offset  8  uint32   version, 1
//   offset 12  uint32   token width in bytes: 2 (vocab size <= 65536) or 4
//   offset 16  uint64   token count
//   offset 24  uint32   vocab size; every token is below it
//   offset 28  uint32   reserved, 0
//   offset 32  uint64   FNV-1a 64 of the payload bytes
//   offset 40           the tokens, uint16 or uint32 each
// The reader checks every field, the file size and the checksum, and scans every token before
// handing the shard out, so a training run fails at open, not an hour in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace mx::data {

inline constexpr char kShardMagic[8] = {'M', 'X', 'T', 'O', 'K', 'E', 'N', 'S'};
inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 40;

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t token_bytes = 2;
  uint64_t token_count = 0;
  uint32_t vocab_size = 0;
  uint64_t checksum = 0;
};

// Read-only tokens of width 2 or 4, wherever they live (a mapped shard, a vector).
struct TokenView {
  const std::byte* data = nullptr;
  uint32_t token_bytes = 4;
  uint64_t count = 0;

  uint32_t operator[](uint64_t i) const {
    if (token_bytes == 2) {
      uint16_t v;
      std::memcpy(&v, data + 2 * i, 2);
      return v;
    }
    uint32_t v;
    std::memcpy(&v, data + 4 * i, 4);
    return v;
  }
  uint64_t size() const { return count; }
  static TokenView of(std::span<const uint32_t> tokens) {
    return {reinterpret_cast<const std::byte*>(tokens.data()), 4, tokens.size()};
  }
};

// FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over bytes.
uint64_t fnv1a64(std::span<const std::byte> bytes);

// Writes atomically (temporary file, then rename). Width 2 when vocab_size <= 65536. Fails if
// a token is >= vocab_size.
std::string write_shard(const std::filesystem::path& path, std::span<const uint32_t> tokens,
                        uint32_t vocab_size);

// Validates a whole shard file's bytes; `name` prefixes the error.
std::string parse_shard(std::span<const std::byte> file, const std::string& name,
                        ShardHeader* header);

// A validated shard, memory-mapped for as long as it lives. Move-only.
class TokenShard {
 public:
  TokenShard() = default;
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  const ShardHeader& header() const { return header_; }
  TokenView tokens() const;
  // The whole file as mapped and checked: header and tokens.
  std::span<const uint8_t> file_bytes() const {
    return {static_cast<const uint8_t*>(map_), map_bytes_};
  }

 private:
  friend std::string open_shard(const std::filesystem::path& path, TokenShard* out);
  void release();
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  ShardHeader header_;
};

std::string open_shard(const std::filesystem::path& path, TokenShard* out);

}  // namespace mx::data
