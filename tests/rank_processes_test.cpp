// Ranks as processes (train::run_rank_processes), played by small shell commands: all exit
// cleanly, or the first to fail is named and the others are stopped within the grace period.
#include "mx/train/rank_processes.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace mx::train {
namespace {

using std::chrono::milliseconds;

std::vector<std::string> sh(const std::string& script) {
  return {"/bin/sh", "-c", script};
}

TEST(RankProcesses, EveryRankExitingCleanlyIsSuccess) {
  RankExit failure;
  EXPECT_EQ(
      run_rank_processes({sh("exit 0"), sh("sleep 0.1"), sh("true")}, milliseconds(2000), &failure),
      "");
  EXPECT_EQ(failure.rank, -1);
}

TEST(RankProcesses, AFailingRankIsNamedAndTheOthersStopWithinTheGrace) {
  RankExit failure;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_rank_processes({sh("exec sleep 30"), sh("sleep 0.2; exit 3"), sh("exec sleep 30")},
                               milliseconds(2000), &failure),
            "rank 1 exited with status 3");
  EXPECT_EQ(failure.rank, 1);
  EXPECT_EQ(failure.status, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RankProcesses, ARankEndedByASignalIsNamedWithTheSignal) {
  RankExit failure;
  EXPECT_EQ(
      run_rank_processes({sh("kill -9 $$"), sh("exec sleep 30")}, milliseconds(2000), &failure),
      "rank 0 was killed by signal 9");
  EXPECT_EQ(failure.signal, 9);
}

TEST(RankProcesses, ARankThatIgnoresTerminationIsKilledAfterTheGrace) {
  RankExit failure;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_rank_processes({sh("trap '' TERM; exec sleep 30"), sh("exit 2")}, milliseconds(300),
                               &failure),
            "rank 1 exited with status 2");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(RankProcesses, AProgramThatCannotStartIsNamed) {
  RankExit failure;
  const std::string e =
      run_rank_processes({sh("exec sleep 30"), {"/nonexistent/mx"}}, milliseconds(2000), &failure);
  EXPECT_EQ(failure.rank, 1);
  // posix_spawn reports a failed exec as its error, or the child exits with status 127.
  EXPECT_TRUE(e == "rank 1 could not start: /nonexistent/mx: No such file or directory" ||
              e == "rank 1 exited with status 127")
      << e;
}

}  // namespace
}  // namespace mx::train
