// ZeRO-1 training among thread ranks (nn::ShardedAdamW over nn::ThreadGroup, each rank a model
// on its own CPU backend) against one model trained on the whole global batch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#include "mx/nn/adamw.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/data_parallel.h"
#include "mx/nn/model.h"
#include "mx/nn/sharded_adamw.h"
#include "mx/nn/thread_communicator.h"

namespace mx::nn {
namespace {

constexpr int64_t kBatch = 6, kSeq = 16, kSteps = 3;
constexpr float kLr = 1e-3f;
constexpr double kClip = 0.5;  // below the tiny model's first gradient norms: clipping runs

ModelConfig two_layers() {
  ModelConfig c = *model_preset("tiny", Arch::kGpt2);
  c.n_layers = 2;
  return c;
}

// The global batch of step s: kBatch rows of kSeq tokens and their next tokens.
void batch_of(int64_t step, int64_t vocab, std::vector<uint32_t>* in, std::vector<uint32_t>* out) {
  in->clear(), out->clear();
  for (int64_t i = 0; i < kBatch * kSeq; ++i) {
    in->push_back(uint32_t((i * 31 + step * 7 + 3) % vocab));
    out->push_back(uint32_t((i * 31 + step * 7 + 34) % vocab));
  }
}

struct Trained {
  std::vector<float> params, m, v;  // after the last step: weights and AdamW's moments
  int64_t adam_steps = 0;
  std::vector<double> losses, norms;
};

Trained one_model(const ModelConfig& config) {
  Model model(config, std::make_unique<CpuBackend>(1));
  model.params().init(5);
  AdamW adamw(model, AdamWConfig{});
  Trained t;
  std::vector<uint32_t> in, out;
  for (int64_t step = 0; step < kSteps; ++step) {
    batch_of(step, config.vocab, &in, &out);
    model.zero_grad();
    float loss = 0;
    PassOptions training;
    training.training = true;
    EXPECT_EQ(model.forward(in.data(), out.data(), kBatch, kSeq, &loss, training), "");
    EXPECT_EQ(model.backward(), "");
    t.norms.push_back(clip_grad_norm(model, kClip));
    adamw.step(model, kLr);
    t.losses.push_back(loss);
  }
  t.params.assign(model.params().data(), model.params().data() + model.params().size());
  t.m = adamw.m(), t.v = adamw.v();
  return t;
}

// Steps [first, last) of ZeRO-1 training among `world` thread ranks, from the initial weights
// or from `start` (a checkpoint's weights and whole moments); what every rank ends with. Each
// rank's losses and norms are the global ones (the mean loss over the ranks). With
// `during_backward` the gradients are reduced as the backward finishes them (reduce_ready).
std::vector<Trained> thread_ranks(const ModelConfig& config, int world, int64_t first = 0,
                                  int64_t last = kSteps, const Trained* start = nullptr,
                                  bool during_backward = false) {
  ThreadGroup group(world);
  std::vector<Trained> ranks(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<Communicator> comm = group.member(r);
      Model model(config, std::make_unique<CpuBackend>(1));
      model.params().init(5);
      std::unique_ptr<ShardedAdamW> adamw;
      ASSERT_EQ(ShardedAdamW::create(model, *comm, AdamWConfig{}, &adamw), "");
      if (start != nullptr) {
        std::copy(start->params.begin(), start->params.end(), model.params().data());
        ASSERT_EQ(adamw->load_moments(start->m, start->v, start->adam_steps), "");
      }
      BatchSlice slice;
      ASSERT_EQ(batch_slice(kBatch, 0, world, r, &slice), "");
      Trained& t = ranks[size_t(r)];
      std::vector<uint32_t> in, out;
      for (int64_t step = first; step < last; ++step) {
        batch_of(step, config.vocab, &in, &out);
        model.zero_grad();
        float loss = 0;
        PassOptions training;
        training.training = true;
        training.grad_scale = 1.0f / float(world);
        const size_t row0 = size_t(slice.first_row * kSeq);
        EXPECT_EQ(
            model.forward(in.data() + row0, out.data() + row0, slice.rows, kSeq, &loss, training),
            "");
        Model::GradsReady ready;
        if (during_backward) {
          ready = [&](int64_t at, int64_t count) { adamw->reduce_ready(model, at, count); };
        }
        EXPECT_EQ(model.backward(ready), "");
        double norm = 0;
        EXPECT_EQ(adamw->step(model, kLr, kClip, &norm), "");
        double mean = double(loss) / world;
        comm->all_reduce_sum(&mean, 1);
        t.losses.push_back(mean);
        t.norms.push_back(norm);
      }
      t.params.assign(model.params().data(), model.params().data() + model.params().size());
      EXPECT_EQ(adamw->gather_moments(&t.m, &t.v), "");
      t.adam_steps = adamw->steps();
    });
  }
  for (std::thread& t : threads) t.join();
  return ranks;
}

double largest_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  }
  return worst;
}

// The ranks' gradients are sums of the same terms as the one model's in another order, so they
// differ by float32 rounding. AdamW divides each gradient by its running RMS, which carries
// that rounding into the update at full size for elements whose gradients are tiny: the weights
// then differ by up to a few 1e-6 after three steps (1.9e-6 measured with 2 ranks), against
// updates of about lr = 1e-3 per step, which a wrong shard or a missing rank's gradients would
// change. A wrong scale of the gradients (which clipping and AdamW's normalization would hide
// from the weights) shows in the norms.
TEST(ShardedAdamW, ThreadRanksTrainAsOneModelOnTheGlobalBatch) {
  const ModelConfig config = two_layers();
  const Trained one = one_model(config);
  for (int world : {2, 3}) {
    const std::vector<Trained> ranks = thread_ranks(config, world);
    for (const Trained& rank : ranks) {
      // Every rank holds the same weights and gathers the same moments, bit for bit.
      ASSERT_EQ(rank.params, ranks[0].params) << world;
      ASSERT_EQ(rank.m, ranks[0].m) << world;
    }
    EXPECT_LT(largest_difference(one.params, ranks[0].params), 1e-5) << world << " ranks";
    // The first moment is 0.1 of a clipped gradient (norm 0.5 over ~10^5 elements) per step.
    EXPECT_LT(largest_difference(one.m, ranks[0].m), 1e-6) << world << " ranks";
    EXPECT_EQ(ranks[0].adam_steps, kSteps);
    for (int64_t s = 0; s < kSteps; ++s) {
      EXPECT_NEAR(ranks[0].losses[size_t(s)], one.losses[size_t(s)], 1e-5) << world;
      EXPECT_NEAR(ranks[0].norms[size_t(s)], one.norms[size_t(s)], 1e-5 * one.norms[size_t(s)]);
      EXPECT_GT(one.norms[size_t(s)], kClip);
    }
  }
}

// One rank: no other rank's terms, the same sums as AdamW over the whole buffer.
TEST(ShardedAdamW, OneRankUpdatesAsAdamWDoes) {
  const ModelConfig config = two_layers();
  const Trained one = one_model(config);
  const std::vector<Trained> ranks = thread_ranks(config, 1);
  EXPECT_LT(largest_difference(one.params, ranks[0].params), 1e-7);
}

// A checkpoint holds the whole state: resumed by as many ranks, the run repeats the
// uninterrupted one bit for bit; resumed by another number of ranks, within float32 rounding.
TEST(ShardedAdamW, WholeMomentsResumeOnTheSameOrAnotherNumberOfRanks) {
  const ModelConfig config = two_layers();
  const std::vector<Trained> straight = thread_ranks(config, 2);
  const Trained stopped = thread_ranks(config, 2, 0, kSteps - 1)[0];
  const Trained resumed = thread_ranks(config, 2, kSteps - 1, kSteps, &stopped)[0];
  EXPECT_EQ(resumed.params, straight[0].params);
  EXPECT_EQ(resumed.m, straight[0].m);
  EXPECT_EQ(resumed.v, straight[0].v);
  EXPECT_EQ(resumed.losses.back(), straight[0].losses.back());
  const Trained on_three = thread_ranks(config, 3, kSteps - 1, kSteps, &stopped)[0];
  EXPECT_LT(largest_difference(on_three.params, straight[0].params), 1e-5);
  EXPECT_EQ(on_three.adam_steps, kSteps);
}

// The reduction in pieces, each range toward the ranks that own it as the backward finishes
// it, sums what one reduce-scatter sums in the same order: the same bits, with shards that
// split blocks and tensors (2 ranks), and a rank whose shard is mostly padding (3 ranks).
TEST(ShardedAdamW, ReducingDuringTheBackwardGivesTheBitsOfOneReduceScatter) {
  const ModelConfig config = two_layers();
  for (int world : {1, 2, 3}) {
    const std::vector<Trained> after = thread_ranks(config, world, 0, kSteps, nullptr, false);
    const std::vector<Trained> during = thread_ranks(config, world, 0, kSteps, nullptr, true);
    for (int r = 0; r < world; ++r) {
      EXPECT_EQ(during[size_t(r)].params, after[size_t(r)].params) << world << " ranks";
      EXPECT_EQ(during[size_t(r)].m, after[size_t(r)].m) << world << " ranks";
      EXPECT_EQ(during[size_t(r)].v, after[size_t(r)].v) << world << " ranks";
      EXPECT_EQ(during[size_t(r)].losses, after[size_t(r)].losses) << world << " ranks";
      EXPECT_EQ(during[size_t(r)].norms, after[size_t(r)].norms) << world << " ranks";
    }
  }
}

// A step whose gradients were reduced for only some parameters would update the others with
// this rank's own gradients: it is refused.
TEST(ShardedAdamW, RefusesAStepWhoseGradientsWereReducedInPart) {
  ThreadGroup group(1);
  std::unique_ptr<Communicator> comm = group.member(0);
  Model model(two_layers(), std::make_unique<CpuBackend>(1));
  model.params().init(5);
  std::unique_ptr<ShardedAdamW> adamw;
  ASSERT_EQ(ShardedAdamW::create(model, *comm, AdamWConfig{}, &adamw), "");
  std::vector<uint32_t> in, out;
  batch_of(0, model.config().vocab, &in, &out);
  PassOptions training;
  training.training = true;
  float loss = 0;
  ASSERT_EQ(model.forward(in.data(), out.data(), kBatch, kSeq, &loss, training), "");
  int ranges = 0;
  ASSERT_EQ(model.backward([&](int64_t at, int64_t count) {
    if (ranges++ == 0) adamw->reduce_ready(model, at, count);
  }),
            "");
  double norm = 0;
  const std::string e = adamw->step(model, kLr, kClip, &norm);
  EXPECT_EQ(e.rfind("the backward reduced the gradients of ", 0), 0u) << e;
  EXPECT_NE(e.find(" of " + std::to_string(model.params().size()) + " parameters"),
            std::string::npos)
      << e;
}

}  // namespace
}  // namespace mx::nn
