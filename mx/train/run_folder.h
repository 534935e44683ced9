// The parts of a run folder (trainer.h) that keep two runs from mixing: the lock that one
// training process holds, and the tokenized data with a record of what it was made from.
#pragma once

#include <functional>
#include <string>

#include "mx/data/paths.h"
#include "mx/train/train_config.h"

namespace mx::train {

// An exclusive lock (flock) on RUN_DIR/.lock: a second `mx train` into the same folder fails at
// once rather than interleave its log and checkpoints with the first's. The kernel releases it
// when the process ends, however it ends, so a killed run never leaves the folder locked.
class RunFolderLock {
 public:
  RunFolderLock() = default;
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;
  ~RunFolderLock();

  // Creates run_dir if needed.
  std::string acquire(const std::string& run_dir);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// RUN_DIR/data/{train,val}.bin made from config.data with config.tokenizer, recorded in
// RUN_DIR/data/source.json. Shards already there are kept when that record matches. Otherwise a
// new run (`resuming` false) makes them again, and a resume refuses: its checkpoint was trained
// on other data. A resume of a folder made before the record existed keeps its shards.
std::string prepare_run_data(const TrainConfig& config, const std::string& run_dir, bool resuming,
                             const data::DataPaths& paths,
                             const std::function<void(const std::string&)>& on_message);

}  // namespace mx::train
