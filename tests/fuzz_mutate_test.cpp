// The replay's mutations (fuzz/mutate.h): the same number gives the same bytes, every number
// changes its seed, the kinds come in the documented order, and splices draw on another seed.
#include "fuzz/mutate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace mx::fuzz {
namespace {

// Two seeds of uniform bytes that no edit produces by chance (0x11 is none of the extreme
// values written), so that any edit shows.
std::vector<Seed> two_seeds() {
  return {{"a", std::vector<uint8_t>(600, 0x11)}, {"b", std::vector<uint8_t>(40, 0x22)}};
}

TEST(FuzzMutate, TheSameNumberGivesTheSameBytes) {
  const std::vector<Seed> seeds = two_seeds();
  for (uint64_t n = 0; n < 200; ++n) {
    const Mutation first = mutate(seeds, 0, n), again = mutate(seeds, 0, n);
    EXPECT_EQ(first.bytes, again.bytes) << n;
    EXPECT_EQ(first.description, again.description) << n;
  }
}

TEST(FuzzMutate, EveryNumberChangesTheSeed) {
  const std::vector<Seed> seeds = two_seeds();
  for (uint64_t n = 0; n < 700; ++n) {
    EXPECT_NE(mutate(seeds, 0, n).bytes, seeds[0].bytes)
        << n << ": " << mutate(seeds, 0, n).description;
  }
}

TEST(FuzzMutate, NumbersCycleThroughTheKindsInOrder) {
  const std::vector<Seed> seeds = two_seeds();
  const std::string first_words[kMutationKinds] = {
      "flip bit", "byte ", "bytes ", "truncate", "copy bytes", "delete bytes", "bytes 0.."};
  for (uint64_t n = 0; n < 3 * kMutationKinds; ++n) {
    const std::string& expected = first_words[n % kMutationKinds];
    EXPECT_EQ(mutate(seeds, 0, n).description.rfind(expected, 0), 0u)
        << n << ": " << mutate(seeds, 0, n).description;
  }
}

TEST(FuzzMutate, LaterNumbersStackMoreEdits) {
  const std::vector<Seed> seeds = two_seeds();
  auto edits = [&](uint64_t n) {
    const std::string d = mutate(seeds, 0, n).description;
    return 1 + std::count(d.begin(), d.end(), ';');
  };
  EXPECT_EQ(edits(0), 1);
  EXPECT_EQ(edits(kMutationKinds), 2);
  EXPECT_EQ(edits(2 * kMutationKinds), 3);
  EXPECT_EQ(edits(3 * kMutationKinds), 1);
}

TEST(FuzzMutate, ASpliceEndsWithBytesOfTheOtherSeed) {
  const std::vector<Seed> seeds = two_seeds();
  for (uint64_t n = kMutationKinds - 1; n < 50 * kMutationKinds; n += 3 * kMutationKinds) {
    const Mutation m = mutate(seeds, 0, n);
    ASSERT_NE(m.description.find(" then b from byte "), std::string::npos) << m.description;
    for (size_t i = 0; i < m.bytes.size(); ++i) {
      // A prefix of seed a, then a suffix of seed b.
      if (m.bytes[i] == 0x22) {
        for (size_t j = i; j < m.bytes.size(); ++j) ASSERT_EQ(m.bytes[j], 0x22) << m.description;
        break;
      }
      ASSERT_EQ(m.bytes[i], 0x11) << m.description;
    }
  }
}

TEST(FuzzMutate, AnEmptySeedStaysUsable) {
  const std::vector<Seed> seeds = {{"empty", {}}, {"b", std::vector<uint8_t>(40, 0x22)}};
  for (uint64_t n = 0; n < 100; ++n) {
    const Mutation m = mutate(seeds, 0, n);
    EXPECT_FALSE(m.description.empty()) << n;
  }
}

}  // namespace
}  // namespace mx::fuzz
