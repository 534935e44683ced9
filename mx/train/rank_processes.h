// The ranks of a data-parallel run as processes, one per GPU: all started together, and all
// stopped within seconds when one of them fails, so that no rank waits forever in a collective
// for a rank that is gone.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace mx::train {

struct RankExit {
  int rank = -1;   // the first rank that failed; -1 when none did
  int status = 0;  // its exit status, when it exited
  int signal = 0;  // the signal that ended it, when one did
};

// Starts argv[r] for every rank r (argv[r][0] the program's path) and waits for them. When one
// exits with a nonzero status or by a signal, the others get SIGTERM, and SIGKILL once `grace`
// has passed. Returns "" when every rank exited with status 0, else one line naming the first
// rank that failed and how: "rank 1 exited with status 2", "rank 0 was killed by signal 9",
// "rank 3 could not start: ...".
std::string run_rank_processes(const std::vector<std::vector<std::string>>& argv,
                               std::chrono::milliseconds grace, RankExit* first_failure);

}  // namespace mx::train
