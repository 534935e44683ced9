#include "fuzz/mutate.h"

#include <cstdio>

namespace mx::fuzz {

namespace {

// splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA
// 2014; the constants of Vigna's public-domain splitmix64.c): a tiny generator whose output is
// fixed by its definition, unlike the standard library's distributions, which differ between
// implementations.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : size_t(next() % n); }
};

constexpr size_t kHeaderBytes = 512;

// A position in [0, size): half the time within the header region.
size_t position(Rng& rng, size_t size) {
  return rng.below(rng.next() % 2 == 0 && size > kHeaderBytes ? kHeaderBytes : size);
}

std::string hex(uint64_t v) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", static_cast<unsigned long long>(v));
  return text;
}

// The bytes [begin, end), end > begin, as "first..last".
std::string range(size_t begin, size_t end) {
  return std::to_string(begin) + ".." + std::to_string(end - 1);
}

// Integers at the edges of a `width`-byte field, signed and unsigned, and 32-bit edges that
// overflow size arithmetic.
uint64_t extreme_integer(Rng& rng, size_t width) {
  const uint64_t all = width == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * width)) - 1;
  const uint64_t values[] = {0,          1,           all,
                             all - 1,    all >> 1,    (all >> 1) + 1,
                             0xFFFFFFFF, 0x100000000, uint64_t{1} << (4 * width)};
  return values[rng.below(std::size(values))] & all;
}

std::string flip_bits(Rng& rng, std::vector<uint8_t>& b) {
  if (b.empty()) return "no bit to flip";
  const size_t flips = 1 + rng.below(4);
  std::string what = "flip bit";
  for (size_t i = 0; i < flips; ++i) {
    const size_t at = position(rng, b.size());
    const unsigned bit = unsigned(rng.below(8));
    b[at] ^= uint8_t(1u << bit);
    what += (i == 0 ? " " : ", ") + std::to_string(bit) + " of byte " + std::to_string(at);
  }
  return what;
}

std::string set_byte(Rng& rng, std::vector<uint8_t>& b) {
  if (b.empty()) return "no byte to set";
  static constexpr uint8_t kValues[] = {0x00, 0xFF, 0x7F, 0x80};
  const size_t at = position(rng, b.size());
  b[at] = kValues[rng.below(std::size(kValues))];
  return "byte " + std::to_string(at) + " = " + hex(b[at]);
}

std::string overwrite_window(Rng& rng, std::vector<uint8_t>& b) {
  static constexpr size_t kWidths[] = {2, 4, 8};
  const size_t width = kWidths[rng.below(std::size(kWidths))];
  if (b.size() < width) return set_byte(rng, b);
  const size_t at = position(rng, b.size() - width + 1);
  const uint64_t value = extreme_integer(rng, width);
  for (size_t i = 0; i < width; ++i) b[at + i] = uint8_t(value >> (8 * i));
  return "bytes " + range(at, at + width) + " = " + hex(value);
}

std::string truncate(Rng& rng, std::vector<uint8_t>& b) {
  b.resize(rng.below(b.size()));
  return "truncate to " + std::to_string(b.size()) + " bytes";
}

// A chunk of 1..256 bytes (and at most the input).
size_t chunk_length(Rng& rng, size_t size) {
  return 1 + rng.below(size < 256 ? size : 256);
}

std::string duplicate_chunk(Rng& rng, std::vector<uint8_t>& b) {
  if (b.empty()) return "no chunk to copy";
  const size_t length = chunk_length(rng, b.size());
  const size_t from = rng.below(b.size() - length + 1);
  const size_t to = position(rng, b.size() + 1);
  const std::vector<uint8_t> chunk(b.begin() + long(from), b.begin() + long(from + length));
  b.insert(b.begin() + long(to), chunk.begin(), chunk.end());
  return "copy bytes " + range(from, from + length) + " to " + std::to_string(to);
}

std::string delete_chunk(Rng& rng, std::vector<uint8_t>& b) {
  if (b.empty()) return "no chunk to delete";
  const size_t length = chunk_length(rng, b.size());
  const size_t from = position(rng, b.size() - length + 1);
  b.erase(b.begin() + long(from), b.begin() + long(from + length));
  return "delete bytes " + range(from, from + length);
}

std::string splice(Rng& rng, std::vector<uint8_t>& b, const std::vector<Seed>& seeds,
                   size_t index) {
  const size_t partner =
      seeds.size() < 2 ? index : (index + 1 + rng.below(seeds.size() - 1)) % seeds.size();
  const std::vector<uint8_t>& other = seeds[partner].bytes;
  const size_t keep = rng.below(b.size() + 1);
  const size_t from = rng.below(other.size() + 1);
  b.resize(keep);
  b.insert(b.end(), other.begin() + long(from), other.end());
  return "bytes 0.." + std::to_string(keep) + " then " + seeds[partner].name + " from byte " +
         std::to_string(from);
}

std::string edit(uint64_t kind, Rng& rng, std::vector<uint8_t>& b, const std::vector<Seed>& seeds,
                 size_t index) {
  switch (kind) {
    case 0:
      return flip_bits(rng, b);
    case 1:
      return set_byte(rng, b);
    case 2:
      return overwrite_window(rng, b);
    case 3:
      return truncate(rng, b);
    case 4:
      return duplicate_chunk(rng, b);
    case 5:
      return delete_chunk(rng, b);
    default:
      return splice(rng, b, seeds, index);
  }
}

}  // namespace

Mutation mutate(const std::vector<Seed>& seeds, size_t index, uint64_t n) {
  Rng rng{n * 0xD1B54A32D192ED03ull + index};
  Mutation m{seeds[index].bytes, ""};
  const uint64_t extra = (n / kMutationKinds) % 3;
  m.description = edit(n % kMutationKinds, rng, m.bytes, seeds, index);
  for (uint64_t i = 0; i < extra; ++i) {
    m.description += "; " + edit(rng.below(kMutationKinds), rng, m.bytes, seeds, index);
  }
  return m;
}

}  // namespace mx::fuzz
