// Data parallelism on the GPU with the one GPU a test host has: the NCCL communicator of a
// world of one rank, and the ZeRO-1 step (nn::ShardedAdamW) on the CUDA backend against AdamW.
// Runs with several GPUs need several processes; these tests skip where no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/adamw.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/cuda/nccl_communicator.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/model.h"
#include "mx/nn/sharded_adamw.h"
#include "mx/train/run_log.h"
#include "mx/train/trainer.h"
#include "tests/cuda/skip_without_gpu.h"
#include "tests/temp_dir.h"
#include "tests/tiny_run.h"

namespace mx::nn {
namespace {

std::unique_ptr<Backend> gpu(BufType act = BufType::kF32) {
  std::string error;
  std::unique_ptr<Backend> b = make_cuda_backend({act, false, 0}, &error);
  EXPECT_NE(b, nullptr) << error;
  return b;
}

// The GPU's attention takes head sizes that are multiples of 32: the tiny preset's width of 64
// in two heads.
void use_gpu_heads(ModelConfig* c) {
  c->n_heads = c->n_kv_heads = 2;
}

std::unique_ptr<Communicator> world_of_one(Backend& backend) {
  NcclUniqueId id;
  EXPECT_EQ(make_nccl_unique_id(&id), "");
  std::unique_ptr<Communicator> comm;
  EXPECT_EQ(make_nccl_communicator(backend, id, 0, 1, &comm), "");
  return comm;
}

TEST(NcclCommunicator, OneRankCollectivesGiveTheirInputBack) {
  SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = gpu();
  std::unique_ptr<Communicator> comm = world_of_one(*be);
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  std::vector<float> host(100);
  for (size_t i = 0; i < host.size(); ++i) host[i] = 0.25f * float(i) - 3.0f;
  Buf a = be->alloc(BufType::kF32, 100), b = be->alloc(BufType::kF32, 100);
  be->upload(a, host.data());
  comm->reduce_scatter_sum(a, b, 100);
  std::vector<float> back(100);
  be->download(back.data(), b);
  EXPECT_EQ(back, host);
  be->zero(a);
  comm->all_gather(b, a, 100);
  be->download(back.data(), a);
  EXPECT_EQ(back, host);
  double sums[2] = {1.5, -2.25};
  comm->all_reduce_sum(sums, 2);
  EXPECT_EQ(sums[0], 1.5);
  EXPECT_EQ(sums[1], -2.25);
  EXPECT_EQ(comm->take_error(), "");
  EXPECT_EQ(be->take_error(), "");
}

TEST(NcclCommunicator, RefusesABackendThatIsNotOnTheGpu) {
  SKIP_WITHOUT_GPU();
  Model cpu_model(*model_preset("tiny", Arch::kGpt2));
  NcclUniqueId id;
  ASSERT_EQ(make_nccl_unique_id(&id), "");
  std::unique_ptr<Communicator> comm;
  EXPECT_EQ(make_nccl_communicator(cpu_model.backend(), id, 0, 1, &comm),
            "NCCL runs between GPUs: the backend is not a CUDA backend");
  EXPECT_EQ(make_nccl_communicator(cpu_model.backend(), id, 1, 1, &comm),
            "rank 1 is not among the 1 ranks");
}

// One rank holds every shard: the ZeRO-1 step is AdamW over the whole buffer, up to the clip
// factor, which it computes from the square of the norm (a rounding apart).
TEST(ShardedAdamWCuda, OneRankUpdatesAsAdamWDoes) {
  SKIP_WITHOUT_GPU();
  ModelConfig config = *model_preset("tiny", Arch::kGpt2);
  config.n_layers = 2;
  use_gpu_heads(&config);
  std::vector<uint32_t> in, out;
  for (int i = 0; i < 4 * 32; ++i) {
    in.push_back(uint32_t((i * 31 + 3) % config.vocab));
    out.push_back(uint32_t((i * 31 + 34) % config.vocab));
  }
  auto train = [&](bool sharded) {
    Model model(config, gpu());
    model.params().init(5);
    model.upload_params();
    std::unique_ptr<Communicator> comm = world_of_one(model.backend());
    AdamW plain(model, AdamWConfig{});
    std::unique_ptr<ShardedAdamW> zero;
    EXPECT_EQ(ShardedAdamW::create(model, *comm, AdamWConfig{}, &zero), "");
    for (int step = 0; step < 3; ++step) {
      model.zero_grad();
      float loss = 0;
      PassOptions training;
      training.training = true;
      EXPECT_EQ(model.forward(in.data(), out.data(), 4, 32, &loss, training), "");
      EXPECT_EQ(model.backward(), "");
      if (sharded) {
        double norm = 0;
        EXPECT_EQ(zero->step(model, 1e-3f, 0.5, &norm), "");
      } else {
        clip_grad_norm(model, 0.5);
        plain.step(model, 1e-3f);
      }
    }
    model.download_params();
    return std::vector<float>(model.params().data(), model.params().data() + model.params().size());
  };
  const std::vector<float> a = train(false), b = train(true);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(worst, 1e-6);
}

// The trainer's data-parallel path on one GPU: the rank's communicator made on its backend
// (NCCL), ShardedAdamW, the checkpoint gathered whole. Against the one-rank path on the same
// GPU the losses differ only by the clip factor's rounding.
TEST(DataParallelTrainingCuda, OneNcclRankTrainsAsTheOneRankPath) {
  SKIP_WITHOUT_GPU();
  test::TempDir dir("mx_dp_cuda");
  const std::string corpus = (dir.path / "corpus.txt").string();
  {
    std::ofstream text(corpus);
    for (int i = 0; i < 3000; ++i) text << "a shared scale per block, line " << i % 23 << ".\n";
  }
  std::string id;
  ASSERT_EQ(make_rank_id(&id), "");
  auto run = [&](const std::string& name, bool nccl) {
    train::TrainConfig c = test::tiny_config(corpus, "mxfp6", 6);
    use_gpu_heads(&c.model_config);
    train::TrainOptions options;
    options.device = "cuda";
    if (nccl) {
      options.make_comm = [&id](Backend& backend, std::unique_ptr<Communicator>* out) {
        return make_rank_communicator(backend, id, 0, 1, out);
      };
    }
    train::TrainResult r;
    const std::string folder = (dir.path / name).string();
    EXPECT_EQ(train::run_training(&c, false, folder, options, {}, &r), "");
    std::vector<train::LogRow> rows;
    EXPECT_EQ(train::read_log(folder + "/log.csv", &rows), "");
    return rows;
  };
  const std::vector<train::LogRow> plain = run("plain", false), ranked = run("ranked", true);
  ASSERT_EQ(plain.size(), 6u);
  ASSERT_EQ(ranked.size(), 6u);
  for (size_t i = 0; i < plain.size(); ++i) {
    EXPECT_NEAR(ranked[i].train_loss, plain[i].train_loss, 1e-4) << "step " << i + 1;
  }
}

}  // namespace
}  // namespace mx::nn
