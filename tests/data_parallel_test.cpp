// The pieces of data-parallel training that need no GPU: how parameters and batches divide
// among ranks (nn/data_parallel.h), and the collectives among threads that stand in for NCCL
// (nn/thread_communicator.h).
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "mx/nn/data_parallel.h"
#include "mx/nn/thread_communicator.h"

namespace mx::nn {
namespace {

TEST(ParamShards, CoverEveryParameterOnceInAlignedEqualShards) {
  ParamShards s;
  ASSERT_EQ(make_param_shards(10, 3, 4, &s), "");
  EXPECT_EQ(s.shard, 4);
  EXPECT_EQ(s.padded(), 12);
  EXPECT_EQ(s.begin(0), 0);
  EXPECT_EQ(s.end(0), 4);
  EXPECT_EQ(s.begin(1), 4);
  EXPECT_EQ(s.end(1), 8);
  EXPECT_EQ(s.begin(2), 8);
  EXPECT_EQ(s.end(2), 10);  // the last shard ends at the parameters; 2 elements of padding
}

TEST(ParamShards, LeaveARankWhollyInThePaddingEmpty) {
  ParamShards s;
  ASSERT_EQ(make_param_shards(5, 4, 2, &s), "");
  EXPECT_EQ(s.shard, 2);
  EXPECT_EQ(s.begin(2), 4);
  EXPECT_EQ(s.end(2), 5);
  EXPECT_EQ(s.begin(3), s.end(3));
  ASSERT_EQ(make_param_shards(124439808, 1, 64, &s), "");
  EXPECT_EQ(s.shard, 124439808);  // one rank: the buffer as it is (already a multiple of 64)
}

TEST(ParamShards, RefuseImpossibleShapes) {
  ParamShards s;
  EXPECT_EQ(make_param_shards(10, 0, 1, &s), "the number of ranks must be at least 1");
  EXPECT_EQ(make_param_shards(10, 2, 0, &s), "the shard alignment must be at least 1");
  EXPECT_EQ(make_param_shards(std::numeric_limits<int64_t>::max() - 10, 2, int64_t(1) << 40, &s),
            "the sharded parameter buffer would not fit in 64-bit sizes");
}

TEST(BatchSlice, GivesEachRankItsConsecutiveRowsOfTheGlobalBatch) {
  BatchSlice b;
  ASSERT_EQ(batch_slice(32, 0, 4, 3, &b), "");
  EXPECT_EQ(b.first_row, 24);
  EXPECT_EQ(b.rows, 8);
  ASSERT_EQ(batch_slice(32, 4, 4, 1, &b), "");
  EXPECT_EQ(b.first_row, 8);
  EXPECT_EQ(batch_slice(30, 0, 4, 0, &b), "--batch 30 does not divide among 4 GPUs");
  EXPECT_EQ(batch_slice(32, 3, 4, 0, &b),
            "--micro-batch 3 must divide each GPU's 8 sequences of the batch");
  EXPECT_EQ(batch_slice(32, 0, 4, 4, &b), "rank 4 is not among the 4 ranks");
}

// Runs body(rank, communicator) on `world` threads at once.
void on_ranks(int world, const std::function<void(int, Communicator&)>& body) {
  ThreadGroup group(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&group, &body, r] {
      std::unique_ptr<Communicator> c = group.member(r);
      body(r, *c);
    });
  }
  for (std::thread& t : threads) t.join();
}

TEST(ThreadGroup, ReduceScatterGivesEachRankItsShardSummedOverTheRanks) {
  const int world = 3;
  const int64_t count = 5;
  std::vector<std::vector<float>> shards(world);
  on_ranks(world, [&](int r, Communicator& c) {
    std::vector<float> send(world * count);
    for (int64_t i = 0; i < world * count; ++i) send[size_t(i)] = float(1000 * r + i);
    // In place: the result lands on this rank's own part of its send buffer.
    Buf all{send.data(), world * count, BufType::kF32};
    c.reduce_scatter_sum(all, all.at(r * count, count), count);
    EXPECT_EQ(c.take_error(), "");
    shards[size_t(r)].assign(send.begin() + r * count, send.begin() + (r + 1) * count);
  });
  for (int r = 0; r < world; ++r) {
    for (int64_t i = 0; i < count; ++i) {
      // sum over q of (1000 q + r * count + i)
      EXPECT_EQ(shards[size_t(r)][size_t(i)], float(3000 + 3 * (r * count + i))) << r << " " << i;
    }
  }
}

TEST(ThreadGroup, ReduceGivesTheRootTheSumAndLeavesTheOthersBuffersAlone) {
  const int world = 3, root = 1;
  const int64_t count = 4;
  on_ranks(world, [&](int r, Communicator& c) {
    std::vector<float> send(count), recv(count, -7.0f);
    for (int64_t i = 0; i < count; ++i) send[size_t(i)] = float(100 * r + i);
    c.reduce_sum({send.data(), count, BufType::kF32}, {recv.data(), count, BufType::kF32}, count,
                 root);
    c.finish_reductions();
    EXPECT_EQ(c.take_error(), "");
    for (int64_t i = 0; i < count; ++i) {
      // sum over q of (100 q + i) on the root; the others' recv as it was
      EXPECT_EQ(recv[size_t(i)], r == root ? float(300 + 3 * i) : -7.0f) << r << " " << i;
      EXPECT_EQ(send[size_t(i)], float(100 * r + i));
    }
  });
}

TEST(ThreadGroup, AllGatherPutsEachRanksShardAtItsOffsetOnEveryRank) {
  const int world = 4;
  const int64_t count = 3;
  on_ranks(world, [&](int r, Communicator& c) {
    std::vector<float> all(world * count, -1.0f);
    for (int64_t i = 0; i < count; ++i) all[size_t(r * count + i)] = float(10 * r + i);
    Buf buf{all.data(), world * count, BufType::kF32};
    c.all_gather(buf.at(r * count, count), buf, count);
    EXPECT_EQ(c.take_error(), "");
    for (int q = 0; q < world; ++q) {
      for (int64_t i = 0; i < count; ++i) EXPECT_EQ(all[size_t(q * count + i)], float(10 * q + i));
    }
  });
}

TEST(ThreadGroup, AllReduceSumsHostValuesInRankOrder) {
  on_ranks(3, [&](int r, Communicator& c) {
    double v[2] = {double(r), 0.1 * (r + 1)};
    c.all_reduce_sum(v, 2);
    EXPECT_EQ(v[0], 3.0);
    EXPECT_EQ(v[1], (0.1 + 0.2) + 0.30000000000000004);
  });
}

TEST(ThreadGroup, ARankThatStopsReleasesTheOthersWithAnErrorNamingIt) {
  std::vector<std::string> errors(3);
  on_ranks(3, [&](int r, Communicator& c) {
    std::vector<float> buf(6, 1.0f);
    Buf b{buf.data(), 6, BufType::kF32};
    c.all_gather(b.at(r * 2, 2), b, 2);  // one collective that completes
    if (r == 1) {
      c.abort("out of memory");
    } else {
      c.reduce_scatter_sum(b, b.at(r * 2, 2), 2);
      c.all_gather(b.at(r * 2, 2), b, 2);  // returns at once after the error
    }
    errors[size_t(r)] = c.take_error();
    EXPECT_EQ(c.take_error(), "");  // each error is reported once
  });
  EXPECT_EQ(errors[0], "rank 1 stopped: out of memory");
  EXPECT_EQ(errors[1], "");
  EXPECT_EQ(errors[2], "rank 1 stopped: out of memory");
}

TEST(ThreadGroup, AWrongBufferTypeStopsTheGroupInsteadOfLeavingItWaiting) {
  std::vector<std::string> errors(2);
  on_ranks(2, [&](int r, Communicator& c) {
    std::vector<float> buf(4, 1.0f);
    Buf b{buf.data(), 4, r == 0 ? BufType::kF32 : BufType::kBF16};
    c.reduce_scatter_sum(b, b.at(r * 2, 2), 2);
    errors[size_t(r)] = c.take_error();
  });
  EXPECT_EQ(errors[1], "rank 1 stopped: reduce-scatter takes float32 buffers");
  EXPECT_EQ(errors[0], errors[1]);
}

}  // namespace
}  // namespace mx::nn
