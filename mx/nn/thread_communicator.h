// A Communicator among threads of one process, each rank a thread with its own backend over
// host memory (the CPU backend): the stand-in for NCCL in tests and on machines without several
// GPUs. Sums run in rank order, so results repeat bit for bit.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mx/nn/communicator.h"

namespace mx::nn {

class ThreadGroup {
 public:
  explicit ThreadGroup(int world);
  int world() const { return world_; }
  // The communicator of rank `rank` (0 <= rank < world), to be used by one thread; the group
  // must outlive it.
  std::unique_ptr<Communicator> member(int rank);

 private:
  friend class ThreadMember;
  // Blocks until every rank has arrived; false (at once) when a rank has aborted.
  bool arrive_and_wait();
  void abort(int rank, const std::string& why);
  std::string abort_reason();

  int world_;
  std::mutex mutex_;
  std::condition_variable arrived_cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  std::string aborted_;              // "rank R stopped: why"; empty while none has
  std::vector<const void*> posted_;  // each rank's buffer in the collective in flight
};

}  // namespace mx::nn
