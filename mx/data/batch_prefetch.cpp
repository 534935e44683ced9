#include "mx/data/batch_prefetch.h"

#include <utility>

namespace mx::data {

BatchPrefetcher::BatchPrefetcher(TokenView tokens, int64_t batch, int64_t seq_len,
                                 SamplerState state)
    : tokens_(tokens),
      batch_(batch),
      seq_len_(seq_len),
      state_(state),
      worker_(&BatchPrefetcher::work, this) {}

BatchPrefetcher::~BatchPrefetcher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void BatchPrefetcher::work() {
  for (;;) {
    // Drawn outside the lock: this is the part that waits on the disk.
    Batch drawn;
    std::string e = sample_batch(tokens_, batch_, seq_len_, &state_, &drawn);
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return !full_ || stopping_; });
    if (stopping_) return;
    slot_ = std::move(drawn);
    slot_state_ = state_;
    error_ = std::move(e);
    full_ = true;
    changed_.notify_all();
    if (!error_.empty()) return;  // every later batch would fail the same way
  }
}

std::string BatchPrefetcher::next(Batch* out, SamplerState* after) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return full_; });
  if (!error_.empty()) return error_;  // the slot stays full, so later calls say it again
  *out = std::move(slot_);
  *after = slot_state_;
  full_ = false;
  changed_.notify_all();
  return "";
}

}  // namespace mx::data
