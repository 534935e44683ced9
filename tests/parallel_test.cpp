// parallel_for: every index once, ranges cut at multiples of the alignment, and the same ranges
// whoever runs them, including when loops nest, follow each other closely or start from two
// threads at once.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "mx/kernels/cpu/parallel.h"

namespace mx::cpu {
namespace {

// The ranges one loop hands out, in a set (their order depends on the threads).
std::set<std::pair<int64_t, int64_t>> ranges_of(int64_t n, int64_t align, int threads) {
  std::mutex m;
  std::set<std::pair<int64_t, int64_t>> ranges;
  parallel_for(n, align, threads, [&](int64_t begin, int64_t end) {
    std::lock_guard<std::mutex> lock(m);
    ranges.insert({begin, end});
  });
  return ranges;
}

TEST(ParallelFor, CoversEveryIndexOnceInAlignedRanges) {
  for (int64_t n : {1, 2, 7, 8, 9, 63, 64, 65, 1000, 4097}) {
    for (int64_t align : {1, 4, 8, 4096}) {
      for (int threads : {1, 2, 3, 8}) {
        SCOPED_TRACE(testing::Message()
                     << "n " << n << " align " << align << " threads " << threads);
        std::vector<int> hits(size_t(n), 0);
        parallel_for(n, align, threads, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) ++hits[size_t(i)];
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)], 1) << "index " << i;
        for (const auto& [begin, end] : ranges_of(n, align, threads)) {
          EXPECT_LT(begin, end);
          EXPECT_EQ(begin % align, 0);
          EXPECT_TRUE(end == n || end % align == 0);
        }
      }
    }
  }
}

TEST(ParallelFor, EmptyLoopCallsNothing) {
  int calls = 0;
  parallel_for(0, 1, 2, [&](int64_t, int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ParallelFor, RangesDependOnTheThreadCountOnly) {
  const auto first = ranges_of(1000, 8, 2);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(ranges_of(1000, 8, 2), first);
}

// Training runs thousands of short loops back to back; each must see only its own work.
TEST(ParallelFor, ManyShortLoopsInARowEachCompleteBeforeReturning) {
  std::vector<int64_t> sums(2000, 0);
  for (size_t loop = 0; loop < sums.size(); ++loop) {
    std::atomic<int64_t> sum{0};
    parallel_for(int64_t(loop % 37) + 1, 1, 0, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) sum += i + 1;
    });
    sums[loop] = sum.load();
  }
  for (size_t loop = 0; loop < sums.size(); ++loop) {
    const int64_t n = int64_t(loop % 37) + 1;
    ASSERT_EQ(sums[loop], n * (n + 1) / 2) << "loop " << loop;
  }
}

TEST(ParallelFor, LoopInsideALoopRunsAndCovers) {
  std::vector<std::atomic<int>> hits(64 * 64);
  parallel_for(64, 1, 2, [&](int64_t b0, int64_t b1) {
    for (int64_t outer = b0; outer < b1; ++outer) {
      parallel_for(64, 1, 2, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) ++hits[size_t(outer * 64 + i)];
      });
    }
  });
  for (const auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(ParallelFor, TwoCallingThreadsAtOnceBothComplete) {
  auto run = [](int64_t* total) {
    for (int loop = 0; loop < 500; ++loop) {
      std::atomic<int64_t> sum{0};
      parallel_for(100, 1, 2, [&](int64_t begin, int64_t end) { sum += end - begin; });
      *total += sum.load();
    }
  };
  int64_t a = 0, b = 0;
  std::thread other(run, &b);
  run(&a);
  other.join();
  EXPECT_EQ(a, 500 * 100);
  EXPECT_EQ(b, 500 * 100);
}

}  // namespace
}  // namespace mx::cpu
