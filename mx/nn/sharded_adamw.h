// AdamW for one rank of a ZeRO-1 data-parallel run (data_parallel.h, communicator.h). Each rank
// runs its backward on its slice of the global batch, with PassOptions::grad_scale = 1 / (its
// passes x ranks) so that the gradients summed over the ranks are the global batch's mean. Then
// step():
//   - reduce-scatter: the rank receives its shard of the gradients summed over the ranks;
//   - the global gradient norm from every shard's sum of squares, and the clip;
//   - AdamW on the shard, whose moments only this rank keeps;
//   - all-gather: every rank's updated shard into every rank's weights, so that the ranks'
//     weights stay the same bits.
// The collectives need padded buffers, so gradients and the shard pass through copies of the
// padded size (a device-to-device copy of the weights and one of the gradients per step).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mx/nn/adamw.h"
#include "mx/nn/communicator.h"
#include "mx/nn/data_parallel.h"
#include "mx/nn/model.h"

namespace mx::nn {

class ShardedAdamW {
 public:
  // Shards aligned to 64 elements (256 bytes), as collectives read them fastest.
  static constexpr int64_t kAlign = 64;

  // The rank's optimizer; its buffers in the model's backend. "" or the reason (memory).
  static std::string create(Model& model, Communicator& comm, const AdamWConfig& config,
                            std::unique_ptr<ShardedAdamW>* out);
  ~ShardedAdamW();

  // Starts the reduction of the gradients of params [first, first + count), finished by the
  // backward's queued work, toward the ranks whose shards hold them: the step's last backward
  // calls it for each range it finishes (Model::backward's `ready`), so that the reduction runs
  // beside the rest of the backward. Sums the same as step()'s own reduce-scatter.
  void reduce_ready(Model& model, int64_t first, int64_t count);
  // One update after this rank's backward (above). Its gradients are reduced here with one
  // reduce-scatter, unless reduce_ready has taken every parameter's. max_norm > 0 clips the
  // global norm, which *norm receives before clipping. "" or the first error of the backend
  // or the collectives.
  std::string step(Model& model, float lr, double max_norm, double* norm);
  int64_t steps() const { return t_; }
  const ParamShards& shards() const { return shards_; }

  // For checkpoints, which hold the whole optimizer state whatever the number of ranks.
  // Collective: the moments of every shard, gathered into whole moments on every rank.
  std::string gather_moments(std::vector<float>* m, std::vector<float>* v);
  // This rank's shard of whole moments (a checkpoint's, written by any number of ranks), and
  // the update count. Not collective.
  std::string load_moments(const std::vector<float>& m, const std::vector<float>& v, int64_t steps);

 private:
  ShardedAdamW(Backend& backend, Communicator& comm, const AdamWConfig& config)
      : backend_(backend), comm_(comm), config_(config) {}

  Backend& backend_;
  Communicator& comm_;
  AdamWConfig config_;
  ParamShards shards_;
  int64_t begin_ = 0, len_ = 0;  // this rank's parameters: [begin_, begin_ + len_)
  Buf sent_;                     // the gradients, padded [padded]
  Buf gathered_;                 // the weights, padded [padded]
  Buf grad_, shard_, m_, v_;     // this rank's [shard]
  Buf decay_;                    // this rank's part of the decay mask [shard]
  int64_t reduced_ = 0;          // parameters whose gradients reduce_ready took this step
  int64_t t_ = 0;
};

}  // namespace mx::nn
