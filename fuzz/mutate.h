// Deterministic mutations of fuzz seeds, for replaying the fuzz targets inside the test suite
// without libFuzzer (replay_main.cpp). Mutation number n of a seed is the same bytes on every
// machine and in every run, so a failure is reproduced from the seed's name and n alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mx::fuzz {

struct Seed {
  std::string name;
  std::vector<uint8_t> bytes;
};

struct Mutation {
  std::vector<uint8_t> bytes;
  std::string description;  // what was done, e.g. "bytes 8..15 = 0x7fffffffffffffff"
};

// The kinds that mutation numbers cycle through: n % kMutationKinds is the first edit made;
// higher numbers stack one or two more edits of any kind on it.
inline constexpr uint64_t kMutationKinds = 7;

// Mutation `n` of seeds[index]: bit flips; a byte set to 0, 0xFF, 0x7F or 0x80; a 2, 4 or
// 8-byte window overwritten with an extreme little-endian integer; a truncation; a chunk
// duplicated or deleted; a splice with another of `seeds`. Positions favour the first 512
// bytes, where the formats keep their headers.
Mutation mutate(const std::vector<Seed>& seeds, size_t index, uint64_t n);

}  // namespace mx::fuzz
