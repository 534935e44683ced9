// Training batches drawn one step ahead on a worker thread. Reading a memory-mapped shard that
// is not yet in the page cache stalls on the disk at every row; drawn ahead, those stalls
// overlap the step in flight instead of delaying the next one.
//
// The batches and sampler states are exactly those of calling sample_batch in turn from the
// starting state: the worker owns its own copy of the state, and each batch comes with the
// state after its draws, which is what a checkpoint saves. So a run gives the same bits, and
// resumes at the same batch, with or without prefetching.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "mx/data/batch_sampler.h"
#include "mx/data/token_shard.h"

namespace mx::data {

class BatchPrefetcher {
 public:
  // Starts drawing the first batch at once. `tokens` must outlive the prefetcher.
  BatchPrefetcher(TokenView tokens, int64_t batch, int64_t seq_len, SamplerState state);
  ~BatchPrefetcher();  // stops the worker; a batch drawn ahead and not taken is dropped
  BatchPrefetcher(const BatchPrefetcher&) = delete;
  BatchPrefetcher& operator=(const BatchPrefetcher&) = delete;

  // The next batch and the sampler state after its draws; the worker starts on the one after.
  // Returns sample_batch's error, if any, for this batch and every later call.
  std::string next(Batch* out, SamplerState* after);

 private:
  void work();

  const TokenView tokens_;
  const int64_t batch_, seq_len_;
  SamplerState state_;  // the worker's, ahead of the caller's by the batch in the slot

  std::mutex mutex_;
  std::condition_variable changed_;
  bool full_ = false;  // the slot holds a batch not yet taken
  bool stopping_ = false;
  Batch slot_;
  SamplerState slot_state_;
  std::string error_;
  std::thread worker_;  // last: it starts after every member it reads exists
};

}  // namespace mx::data
