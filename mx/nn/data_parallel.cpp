#include "mx/nn/data_parallel.h"

#include <limits>

namespace mx::nn {

std::string make_param_shards(int64_t total, int world, int64_t align, ParamShards* out) {
  if (world < 1) return "the number of ranks must be at least 1";
  if (total < 0) return "the parameter count is negative";
  if (align < 1) return "the shard alignment must be at least 1";
  const int64_t per_rank = total / world + (total % world != 0 ? 1 : 0);
  const int64_t blocks = per_rank / align + (per_rank % align != 0 ? 1 : 0);
  if (blocks > std::numeric_limits<int64_t>::max() / align / world) {
    return "the sharded parameter buffer would not fit in 64-bit sizes";
  }
  *out = {total, blocks * align, world};
  return "";
}

std::string batch_slice(int64_t batch, int64_t micro_batch, int world, int rank, BatchSlice* out) {
  if (world < 1) return "the number of ranks must be at least 1";
  if (rank < 0 || rank >= world) {
    return "rank " + std::to_string(rank) + " is not among the " + std::to_string(world) + " ranks";
  }
  if (batch < 1) return "the batch must hold at least one sequence";
  if (batch % world != 0) {
    return "--batch " + std::to_string(batch) + " does not divide among " + std::to_string(world) +
           " GPUs";
  }
  const int64_t rows = batch / world;
  if (micro_batch < 0 || (micro_batch > 0 && rows % micro_batch != 0)) {
    return "--micro-batch " + std::to_string(micro_batch) + " must divide each GPU's " +
           std::to_string(rows) + " sequences of the batch";
  }
  *out = {rows * rank, rows};
  return "";
}

}  // namespace mx::nn
