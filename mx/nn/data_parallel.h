// How a data-parallel run divides its work among `world` ranks (ZeRO-1).
//
// Every rank runs the whole model on an equal slice of each global batch, so that the global
// batch and the data order are those of a one-rank run. Each rank owns one shard of the flat
// parameter buffer: it receives that shard's gradients summed over the ranks (reduce-scatter),
// keeps the shard's AdamW moments, updates the shard, and sends it to every rank (all-gather).
// Collectives need equal counts, so the buffer is seen as world x shard elements, the elements
// past the parameters being padding that stays zero.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

namespace mx::nn {

struct ParamShards {
  int64_t total = 0;  // parameters
  int64_t shard = 0;  // elements per rank, a multiple of the alignment
  int world = 1;

  int64_t padded() const { return shard * world; }
  // The parameters rank r updates: [begin(r), end(r)), empty for a rank wholly in the padding.
  int64_t begin(int r) const { return std::min(total, shard * r); }
  int64_t end(int r) const { return std::min(total, shard * (r + 1)); }
};

// Shards of `total` parameters among `world` ranks, each a multiple of `align` elements (for
// the collectives' alignment). "" or the reason there are none.
std::string make_param_shards(int64_t total, int world, int64_t align, ParamShards* out);

// The rows of a global batch that rank `rank` runs: batch / world consecutive sequences from
// rank * batch / world on. The global batch must divide evenly among the ranks, and the slice
// into micro-batches of `micro_batch` rows (0: the whole slice in one pass).
struct BatchSlice {
  int64_t first_row = 0;
  int64_t rows = 0;
};
std::string batch_slice(int64_t batch, int64_t micro_batch, int world, int rank, BatchSlice* out);

}  // namespace mx::nn
