// Batches for language-model training: inputs [B, T] and targets [B, T], where the targets
// are the inputs shifted by one token (targets[b][t] = tokens[offset_b + t + 1]).
//
// Training batches start at random offsets drawn from a counter-based generator: the i-th
// draw of seed s is SplitMix64's i-th output, mix(s + i * 0x9E3779B97F4A7C15) (Steele, Lea &
// Flood 2014). SamplerState is the seed and the count of draws, two integers: save them with a
// checkpoint and the run resumes with the very batches it would have seen.
//
// Evaluation batches walk a split in order, windows of T inputs one after another (stride T),
// so every token but the first is a target exactly once, except the last < T tokens that do
// not fill a window.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mx/data/token_shard.h"

namespace mx::data {

struct SamplerState {
  uint64_t seed = 0;
  uint64_t draws = 0;  // 64-bit draws used so far
};

// The next 64-bit draw; advances state->draws.
uint64_t next_random(SamplerState* state);

// Uniform in [0, bound) for bound >= 1, by rejection (no modulo bias); one or more draws.
uint64_t next_below(SamplerState* state, uint64_t bound);

struct Batch {
  int64_t rows = 0;  // B, fewer than asked only for the last evaluation batch
  int64_t seq_len = 0;
  std::vector<uint32_t> inputs;   // [rows, seq_len], row-major
  std::vector<uint32_t> targets;  // [rows, seq_len]
};

// B rows, each at an offset uniform in [0, tokens.size() - seq_len - 1]; needs at least
// seq_len + 1 tokens. Rows draw in order, one draw each but for rare rejections.
std::string sample_batch(TokenView tokens, int64_t batch, int64_t seq_len, SamplerState* state,
                         Batch* out);

// Number of evaluation windows and batches over `tokens`.
int64_t eval_window_count(TokenView tokens, int64_t seq_len);
int64_t eval_batch_count(TokenView tokens, int64_t batch, int64_t seq_len);

// The index-th evaluation batch: windows index*B .. index*B + B - 1 (the last batch may hold
// fewer rows).
std::string eval_batch(TokenView tokens, int64_t batch, int64_t seq_len, int64_t index, Batch* out);

}  // namespace mx::data
