#include "mx/data/batch_sampler.h"

#include <fmt/format.h>

#include <algorithm>

namespace mx::data {
namespace {

std::string check_shape(TokenView tokens, int64_t batch, int64_t seq_len) {
  if (batch < 1 || seq_len < 1) {
    return fmt::format("batch {} and sequence length {} must both be at least 1", batch, seq_len);
  }
  if (tokens.size() < uint64_t(seq_len) + 1) {
    return fmt::format("{} tokens cannot fill one sequence of {} inputs and its targets",
                       tokens.size(), seq_len);
  }
  return "";
}

void fill_row(TokenView tokens, uint64_t offset, int64_t row, Batch* b) {
  const int64_t t = b->seq_len;
  for (int64_t i = 0; i < t; ++i) {
    b->inputs[row * t + i] = tokens[offset + i];
    b->targets[row * t + i] = tokens[offset + i + 1];
  }
}

}  // namespace

uint64_t next_random(SamplerState* state) {
  uint64_t z = state->seed + ++state->draws * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t next_below(SamplerState* state, uint64_t bound) {
  // Draws below 2^64 mod bound would make the low residues likelier: redraw those.
  const uint64_t threshold = (0 - bound) % bound;
  uint64_t x;
  do {
    x = next_random(state);
  } while (x < threshold);
  return x % bound;
}

std::string sample_batch(TokenView tokens, int64_t batch, int64_t seq_len, SamplerState* state,
                         Batch* out) {
  if (std::string e = check_shape(tokens, batch, seq_len); !e.empty()) return e;
  Batch b{batch, seq_len, std::vector<uint32_t>(batch * seq_len),
          std::vector<uint32_t>(batch * seq_len)};
  const uint64_t starts = tokens.size() - uint64_t(seq_len);  // offsets 0 .. size - T - 1
  for (int64_t row = 0; row < batch; ++row) fill_row(tokens, next_below(state, starts), row, &b);
  *out = std::move(b);
  return "";
}

int64_t eval_window_count(TokenView tokens, int64_t seq_len) {
  if (seq_len < 1 || tokens.size() < 2) return 0;
  return int64_t((tokens.size() - 1) / uint64_t(seq_len));
}

int64_t eval_batch_count(TokenView tokens, int64_t batch, int64_t seq_len) {
  const int64_t windows = eval_window_count(tokens, seq_len);
  // Not (windows + batch - 1) / batch, which overflows for a batch near 2^63.
  return batch < 1 || windows == 0 ? 0 : (windows - 1) / batch + 1;
}

std::string eval_batch(TokenView tokens, int64_t batch, int64_t seq_len, int64_t index,
                       Batch* out) {
  if (std::string e = check_shape(tokens, batch, seq_len); !e.empty()) return e;
  const int64_t windows = eval_window_count(tokens, seq_len);
  const int64_t batches = eval_batch_count(tokens, batch, seq_len);
  if (index < 0 || index >= batches) {
    return fmt::format("evaluation batch {} does not exist: there are {}", index, batches);
  }
  const int64_t first = index * batch;
  const int64_t rows = std::min(batch, windows - first);
  Batch b{rows, seq_len, std::vector<uint32_t>(rows * seq_len),
          std::vector<uint32_t>(rows * seq_len)};
  for (int64_t row = 0; row < rows; ++row) {
    fill_row(tokens, uint64_t(first + row) * uint64_t(seq_len), row, &b);
  }
  *out = std::move(b);
  return "";
}

}  // namespace mx::data
