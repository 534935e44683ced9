// A fixed batch for tests that run a model's passes: b x t token ids below `vocab`, each row's
// targets the next tokens of one stream.
#pragma once

#include <cstdint>
#include <vector>

namespace mx::test {

struct NextTokens {
  int64_t b = 0, t = 0;
  std::vector<uint32_t> tokens, targets;
  NextTokens(int64_t vocab, int64_t rows, int64_t columns) : b(rows), t(columns) {
    for (int64_t i = 0; i < b * t + 1; ++i) tokens.push_back(uint32_t((i * 37 + 11) % vocab));
    targets.assign(tokens.begin() + 1, tokens.end());
    tokens.pop_back();
  }
};

}  // namespace mx::test
