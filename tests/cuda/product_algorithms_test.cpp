// The CUDA backend's product algorithms (mx/nn/product_algorithms.h): a backend that tunes
// chooses an algorithm for every product shape it runs and writes them down; a backend given
// that file runs the same algorithms, so its results equal the tuning run's bit for bit. The
// tuning times its candidates on the products' own operands, writing to scratch memory: were
// any candidate to write into C or into the GELU's aux, the accumulated weight gradients of the
// tuning run would differ from the second run's. A file from another GPU, or one naming a
// candidate cuBLASLt does not list, is an error. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "mx/io/read_file.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/model.h"
#include "mx/nn/product_algorithms.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/skip_without_gpu.h"
#include "tests/temp_dir.h"

namespace mx::nn {
namespace {

// GPT-2 with head size 64: the products' bias and GELU epilogues, the residual's accumulating
// products, and the weight gradients' accumulation across two passes.
ModelConfig gpt2() {
  ModelConfig c;
  c.arch = Arch::kGpt2;
  c.vocab = 256, c.n_layers = 2, c.seq_len = 128;
  c.n_heads = 2, c.n_kv_heads = 2, c.dim = 128, c.hidden = 512;
  return c;
}

std::unique_ptr<Backend> backend(const std::string& file, bool tune, std::string* error) {
  CudaBackendOptions o;
  o.product_algorithms = file;
  o.tune_products = tune;
  return make_cuda_backend(o, error);
}

struct Training {
  std::vector<float> losses, grads;
};

// Two passes of a batch each into one gradient, under `recipe`, from the same weights.
Training train_passes(Model& m, const Recipe& recipe) {
  m.set_recipe(recipe);
  m.params().init(3);
  m.upload_params();
  m.zero_grad();
  Training r;
  std::mt19937 rng(9);
  const int64_t b = 4, t = 96;
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<uint32_t> tokens(size_t(b * t)), targets(tokens.size());
    for (uint32_t& x : tokens) x = rng() % 256;
    for (uint32_t& x : targets) x = rng() % 256;
    m.set_step(uint64_t(pass));
    float loss = 0;
    EXPECT_EQ(m.forward(tokens.data(), targets.data(), b, t, &loss, {true}), "");
    EXPECT_EQ(m.backward(), "");
    r.losses.push_back(loss);
  }
  m.download_grads();
  r.grads.assign(m.params().grad(), m.params().grad() + m.params().size());
  return r;
}

// A tuned file for the model's products under `recipe`, written to `path`.
void tune_into(const std::string& path, const Recipe& recipe, Training* run) {
  std::string error;
  std::unique_ptr<Backend> tuning = backend("", true, &error);
  ASSERT_NE(tuning, nullptr) << error;
  Model m(gpt2(), std::move(tuning));
  *run = train_passes(m, recipe);
  size_t products = 0;
  ASSERT_EQ(write_cuda_product_algorithms(m.backend(), path, &products), "");
  EXPECT_GT(products, 0u);
}

// A tuned file for the bf16 recipe's products at `path`, changed by edit(file).
template <class Edit>
void tuned_bf16_edited(const std::string& path, Edit edit) {
  Training tuned;
  tune_into(path, *recipe_preset("bf16"), &tuned);
  ProductAlgorithms file;
  ASSERT_EQ(read_product_algorithms(path, &file), "");
  edit(file);
  ASSERT_EQ(write_product_algorithms(path, file), "");
}

TEST(ProductAlgorithms, ARunGivenTheTunedFileRepeatsTheTuningRunBitForBit) {
  SKIP_WITHOUT_GPU();
  const test::TempDir dir;
  for (const char* name : {"bf16", "mxfp6"}) {
    SCOPED_TRACE(name);
    const std::string path = (dir.path / (std::string(name) + ".txt")).string();
    Training tuned;
    tune_into(path, *recipe_preset(name), &tuned);
    ProductAlgorithms file;
    ASSERT_EQ(read_product_algorithms(path, &file), "");
    // Every choice was timed: each line's comment gives a time.
    std::string text;
    ASSERT_EQ(io::read_whole_file(path, &text), "");
    EXPECT_EQ(text.find("# 0.0000 ms"), std::string::npos) << text;

    std::string error;
    std::unique_ptr<Backend> taking = backend(path, false, &error);
    ASSERT_NE(taking, nullptr) << error;
    Model m(gpt2(), std::move(taking));
    const Training again = train_passes(m, *recipe_preset(name));
    ASSERT_EQ(again.losses.size(), tuned.losses.size());
    EXPECT_EQ(std::memcmp(again.losses.data(), tuned.losses.data(), 2 * sizeof(float)), 0);
    EXPECT_EQ(again.grads, tuned.grads);
    // The second backend holds the file's choices, and made no others.
    size_t products = 0;
    const std::string copy = (dir.path / "copy.txt").string();
    ASSERT_EQ(write_cuda_product_algorithms(m.backend(), copy, &products), "");
    ProductAlgorithms written;
    ASSERT_EQ(read_product_algorithms(copy, &written), "");
    EXPECT_EQ(products, file.choices.size());
    for (const auto& [key, choice] : file.choices) {
      ASSERT_TRUE(written.choices.contains(key));
      EXPECT_EQ(written.choices.at(key).candidate, choice.candidate);
    }
  }
}

TEST(ProductAlgorithms, AFileFromAnotherGpuIsRefusedNamingBoth) {
  SKIP_WITHOUT_GPU();
  const test::TempDir dir;
  const std::string path = (dir.path / "bf16.txt").string();
  tuned_bf16_edited(path, [](ProductAlgorithms& file) { file.device = "Another GPU"; });
  std::string error;
  EXPECT_EQ(backend(path, false, &error), nullptr);
  EXPECT_NE(error.find(path + ": chosen on Another GPU with cuBLASLt"), std::string::npos) << error;
  EXPECT_NE(error.find("not on this"), std::string::npos) << error;
}

TEST(ProductAlgorithms, ACandidateThatCuBlasLtDoesNotListIsAnError) {
  SKIP_WITHOUT_GPU();
  const test::TempDir dir;
  const std::string path = (dir.path / "bf16.txt").string();
  tuned_bf16_edited(path, [](ProductAlgorithms& file) {
    file.candidates = 1024;  // more than any heuristic lists
    for (auto& [key, choice] : file.choices) choice.candidate = 1023;
  });
  std::string error;
  std::unique_ptr<Backend> taking = backend(path, false, &error);
  ASSERT_NE(taking, nullptr) << error;
  Model m(gpt2(), std::move(taking));
  m.set_recipe(*recipe_preset("bf16"));
  m.params().init(3);
  m.upload_params();
  const std::vector<uint32_t> tokens(4 * 96, 1);
  float loss = 0;
  const std::string e = m.forward(tokens.data(), tokens.data(), 4, 96, &loss, {true});
  EXPECT_NE(e.find("candidate 1023 for"), std::string::npos) << e;
  EXPECT_NE(e.find("is not among cuBLASLt's"), std::string::npos) << e;
}

}  // namespace
}  // namespace mx::nn
