#include "mx/data/token_shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <bit>
#include <cerrno>
#include <utility>

#include "mx/io/atomic_file.h"

namespace mx::data {
namespace {

// The payload is mapped and read in place.
static_assert(std::endian::native == std::endian::little, "shards are little-endian");

template <typename T>
T load(std::span<const std::byte> bytes, size_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

template <typename T>
void store(std::vector<std::byte>* bytes, size_t offset, T v) {
  std::memcpy(bytes->data() + offset, &v, sizeof(T));
}

std::string truncated_header(const std::string& name, size_t file_bytes) {
  return fmt::format("{}: truncated header: the file ends at offset {}, the header needs {} bytes",
                     name, file_bytes, kShardHeaderBytes);
}

}  // namespace

uint64_t fnv1a64(std::span<const std::byte> bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (std::byte b : bytes) {
    h ^= uint8_t(b);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string write_shard(const std::filesystem::path& path, std::span<const uint32_t> tokens,
                        uint32_t vocab_size) {
  if (vocab_size == 0) return "cannot write " + path.string() + ": vocab size 0";
  const uint32_t width = vocab_size <= 65536 ? 2 : 4;
  std::vector<std::byte> payload(tokens.size() * width);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= vocab_size) {
      return fmt::format("cannot write {}: token {} at index {} is not below the vocab size {}",
                         path.string(), tokens[i], i, vocab_size);
    }
    if (width == 2) {
      store(&payload, 2 * i, uint16_t(tokens[i]));
    } else {
      store(&payload, 4 * i, tokens[i]);
    }
  }
  std::vector<std::byte> header(kShardHeaderBytes);
  std::memcpy(header.data(), kShardMagic, 8);
  store(&header, 8, kShardVersion);
  store(&header, 12, width);
  store(&header, 16, uint64_t(tokens.size()));
  store(&header, 24, vocab_size);
  store(&header, 28, uint32_t{0});
  store(&header, 32, fnv1a64(payload));
  const std::span<const uint8_t> parts[] = {
      {reinterpret_cast<const uint8_t*>(header.data()), header.size()},
      {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()}};
  return io::write_file_atomically(path.string(), parts);
}

std::string parse_shard(std::span<const std::byte> file, const std::string& name,
                        ShardHeader* out) {
  if (file.size() < kShardHeaderBytes) return truncated_header(name, file.size());
  if (std::memcmp(file.data(), kShardMagic, 8) != 0) {
    return name + ": bad magic at offset 0 (expected \"MXTOKENS\"): not a token shard";
  }
  ShardHeader h;
  h.version = load<uint32_t>(file, 8);
  h.token_bytes = load<uint32_t>(file, 12);
  h.token_count = load<uint64_t>(file, 16);
  h.vocab_size = load<uint32_t>(file, 24);
  const uint32_t reserved = load<uint32_t>(file, 28);
  h.checksum = load<uint64_t>(file, 32);
  if (h.version != kShardVersion) {
    return fmt::format("{}: unsupported version {} at offset 8 (this build reads {})", name,
                       h.version, kShardVersion);
  }
  if (h.token_bytes != 2 && h.token_bytes != 4) {
    return fmt::format("{}: token width {} at offset 12 (must be 2 or 4)", name, h.token_bytes);
  }
  if (h.vocab_size == 0 || (h.token_bytes == 2 && h.vocab_size > 65536)) {
    return fmt::format("{}: vocab size {} at offset 24 does not fit {}-byte tokens", name,
                       h.vocab_size, h.token_bytes);
  }
  if (reserved != 0) {
    return fmt::format("{}: reserved field at offset 28 is {}, expected 0", name, reserved);
  }
  const uint64_t have = file.size() - kShardHeaderBytes;
  if (h.token_count > (uint64_t(-1) - kShardHeaderBytes) / h.token_bytes) {
    return fmt::format(
        "{}: truncated: the header (offset 16) says {} tokens, more than any file holds", name,
        h.token_count);
  }
  const uint64_t need = h.token_count * h.token_bytes;
  if (have < need) {
    return fmt::format(
        "{}: truncated: the header (offset 16) says {} tokens, {} bytes from offset {}, but the "
        "file ends at offset {}",
        name, h.token_count, need, kShardHeaderBytes, file.size());
  }
  if (have > need) {
    return fmt::format(
        "{}: token count mismatch: the header (offset 16) says {} tokens, which end at offset "
        "{}, but the file goes on to offset {}",
        name, h.token_count, kShardHeaderBytes + need, file.size());
  }
  const auto payload = file.subspan(kShardHeaderBytes);
  if (const uint64_t sum = fnv1a64(payload); sum != h.checksum) {
    return fmt::format(
        "{}: checksum mismatch: the header (offset 32) says {:#018x}, the payload at offsets "
        "{}..{} hashes to {:#018x}",
        name, h.checksum, kShardHeaderBytes, file.size(), sum);
  }
  const TokenView tokens{payload.data(), h.token_bytes, h.token_count};
  for (uint64_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] >= h.vocab_size) {
      return fmt::format("{}: token {} at offset {} (index {}) is not below the vocab size {}",
                         name, tokens[i], kShardHeaderBytes + i * h.token_bytes, i, h.vocab_size);
    }
  }
  *out = h;
  return "";
}

TokenShard::TokenShard(TokenShard&& other) noexcept {
  *this = std::move(other);
}

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this != &other) {
    release();
    map_ = std::exchange(other.map_, nullptr);
    map_bytes_ = std::exchange(other.map_bytes_, 0);
    header_ = other.header_;
  }
  return *this;
}

TokenShard::~TokenShard() {
  release();
}

void TokenShard::release() {
  if (map_) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

TokenView TokenShard::tokens() const {
  if (!map_) return {nullptr, header_.token_bytes, 0};
  return {static_cast<const std::byte*>(map_) + kShardHeaderBytes, header_.token_bytes,
          header_.token_count};
}

std::string open_shard(const std::filesystem::path& path, TokenShard* out) {
  const std::string name = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("cannot open {}: {}", name, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string e = fmt::format("cannot stat {}: {}", name, std::strerror(errno));
    ::close(fd);
    return e;
  }
  const size_t bytes = size_t(st.st_size);
  // mmap refuses zero bytes; such a file is a truncated header anyway.
  if (bytes < kShardHeaderBytes) {
    ::close(fd);
    return truncated_header(name, bytes);
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping keeps the file
  if (map == MAP_FAILED) return fmt::format("cannot map {}: {}", name, std::strerror(errno));
  TokenShard shard;
  shard.map_ = map;
  shard.map_bytes_ = bytes;
  const std::span<const std::byte> file(static_cast<const std::byte*>(map), bytes);
  if (std::string e = parse_shard(file, name, &shard.header_); !e.empty()) return e;
  *out = std::move(shard);
  return "";
}

}  // namespace mx::data
