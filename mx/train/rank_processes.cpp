#include "mx/train/rank_processes.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

extern char** environ;

namespace mx::train {
namespace {

using Clock = std::chrono::steady_clock;

std::string describe(const RankExit& e) {
  if (e.signal != 0) {
    return "rank " + std::to_string(e.rank) + " was killed by signal " + std::to_string(e.signal);
  }
  return "rank " + std::to_string(e.rank) + " exited with status " + std::to_string(e.status);
}

}  // namespace

std::string run_rank_processes(const std::vector<std::vector<std::string>>& argv,
                               std::chrono::milliseconds grace, RankExit* first_failure) {
  *first_failure = {};
  std::vector<pid_t> pids(argv.size(), -1);
  std::string error;
  for (size_t r = 0; r < argv.size() && error.empty(); ++r) {
    std::vector<char*> args;
    for (const std::string& a : argv[r]) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (args.size() < 2) {
      error = "rank " + std::to_string(r) + " could not start: no program";
      *first_failure = {int(r), 0, 0};
      break;
    }
    if (int e = posix_spawn(&pids[r], args[0], nullptr, nullptr, args.data(), environ); e != 0) {
      pids[r] = -1;
      error =
          "rank " + std::to_string(r) + " could not start: " + argv[r][0] + ": " + std::strerror(e);
      *first_failure = {int(r), 0, 0};
    }
  }
  size_t running = 0;
  for (pid_t p : pids) running += p > 0 ? 1 : 0;
  bool stopping = !error.empty();
  Clock::time_point kill_at = Clock::now() + grace;
  auto stop_others = [&] {
    for (pid_t p : pids) {
      if (p > 0) kill(p, SIGTERM);
    }
    kill_at = Clock::now() + grace;
  };
  if (stopping) stop_others();
  while (running > 0) {
    bool reaped = false;
    for (size_t r = 0; r < pids.size(); ++r) {
      if (pids[r] <= 0) continue;
      int status = 0;
      const pid_t done = waitpid(pids[r], &status, WNOHANG);
      if (done == 0) continue;
      pids[r] = -1;
      --running;
      reaped = true;
      RankExit exit{int(r), WIFEXITED(status) ? WEXITSTATUS(status) : 0,
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0};
      if (done < 0) exit = {int(r), 0, 0};
      const bool failed = exit.status != 0 || exit.signal != 0 || done < 0;
      if (failed && !stopping) {
        *first_failure = exit;
        error =
            done < 0 ? "rank " + std::to_string(r) + " could not be waited for" : describe(exit);
        stopping = true;
        stop_others();
      }
    }
    if (stopping && Clock::now() >= kill_at) {
      for (pid_t p : pids) {
        if (p > 0) kill(p, SIGKILL);
      }
    }
    if (!reaped && running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return error;
}

}  // namespace mx::train
