// Inference with a key/value cache (Model::start_sequence / extend) and the generation that
// uses it: the cache is an optimisation only, so every logit it gives must be the one a full
// forward pass over the sequence so far gives, bit for bit on the CPU.
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"
#include "mx/train/generate.h"

namespace mx::nn {
namespace {

ModelConfig tiny(Arch arch) {
  return *model_preset("tiny", arch);  // context 64, vocabulary 256
}

std::vector<uint32_t> sequence(int64_t length, int64_t vocab) {
  std::vector<uint32_t> s;
  for (int64_t i = 0; i < length; ++i) s.push_back(uint32_t((i * 53 + 7) % vocab));
  return s;
}

std::vector<float> rows_of_a_full_pass(Model& model, const std::vector<uint32_t>& tokens,
                                       int64_t first, int64_t count) {
  EXPECT_EQ(model.forward(tokens.data(), nullptr, 1, int64_t(tokens.size())), "");
  const int64_t v = model.config().vocab;
  const float* logits = model.logits();
  return std::vector<float>(logits + first * v, logits + (first + count) * v);
}

// Chunks of 13, 1, 1, 22 and 7 tokens: a prompt, single tokens, and a chunk that carries the
// cache past 32 tokens, where an MX cast of V along the sequence begins its second block.
void expect_cached_logits_equal_full_passes(
    Arch arch, const Recipe& recipe, bool pack = false,
    mx::cpu::MatmulMode mode = mx::cpu::MatmulMode::kExact) {
  Model model(tiny(arch), std::make_unique<CpuBackend>(0, mode));
  model.params().init(3);
  model.set_recipe(recipe);
  if (pack) {
    ASSERT_GT(model.pack_weights(), 0);
  }
  ASSERT_TRUE(model.can_cache());
  const std::vector<uint32_t> all = sequence(44, model.config().vocab);
  model.start_sequence();
  int64_t done = 0;
  for (int64_t chunk : {13, 1, 1, 22, 7}) {
    ASSERT_EQ(model.extend(all.data() + done, chunk), "");
    const int64_t v = model.config().vocab;
    const std::vector<float> cached(model.logits(), model.logits() + chunk * v);
    ASSERT_EQ(model.cached_tokens(), done + chunk);
    const std::vector<uint32_t> so_far(all.begin(), all.begin() + done + chunk);
    const std::vector<float> full = rows_of_a_full_pass(model, so_far, done, chunk);
    EXPECT_EQ(std::memcmp(cached.data(), full.data(), cached.size() * sizeof(float)), 0)
        << arch_name(arch) << " " << recipe.name << " after " << done + chunk << " tokens";
    done += chunk;
  }
}

TEST(KvCache, ExtendingGivesTheLogitsOfAFullPassBitForBit) {
  Recipe bf16_vector_ops = *recipe_preset("bf16");
  bf16_vector_ops.bf16_vector_ops = true;
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    expect_cached_logits_equal_full_passes(arch, *recipe_preset("fp32"));
    expect_cached_logits_equal_full_passes(arch, bf16_vector_ops);
    // MX weights: every linear layer's and the classifier's, cast at each pass or packed.
    for (const char* format : {"mxfp4w-mxfp6a", "mxfp8"}) {
      Recipe weights_only = *recipe_preset("fp32");
      weights_only.weight_fwd = recipe_preset(format)->weight_fwd;
      weights_only.name = format;
      expect_cached_logits_equal_full_passes(arch, weights_only);
      expect_cached_logits_equal_full_passes(arch, weights_only, /*pack=*/true);
      // Fast products quantize each row of x on its own, so a row's logits do not depend on
      // which rows are computed with it.
      expect_cached_logits_equal_full_passes(arch, weights_only, /*pack=*/true,
                                             mx::cpu::MatmulMode::kFast);
    }
  }
}

TEST(KvCache, AFullCacheBadTokensAndMxActivationCastsAreRefused) {
  Model model(tiny(Arch::kLlama));
  model.params().init(3);
  const std::vector<uint32_t> all = sequence(65, model.config().vocab);
  model.start_sequence();
  ASSERT_EQ(model.extend(all.data(), 60), "");
  EXPECT_EQ(model.extend(all.data() + 60, 5),
            "the key/value cache holds 64 tokens: 60 + 5 do not fit");
  EXPECT_EQ(model.extend(all.data(), 0), "a pass needs at least one token");
  const uint32_t bad = 256;
  EXPECT_EQ(model.extend(&bad, 1), "token id 256 is not below the model's vocabulary of 256");
  EXPECT_EQ(model.cached_tokens(), 60);  // refused passes leave the cache as it was
  ASSERT_EQ(model.extend(all.data() + 60, 4), "");
  model.start_sequence();
  EXPECT_EQ(model.cached_tokens(), 0);
  EXPECT_EQ(model.extend(all.data(), 64), "");

  // MX activations: a full pass is not causal (V's blocks run along the sequence), and the
  // logits a cache would give differ from it, so the cache is refused.
  model.set_recipe(forward_only(*recipe_preset("mxfp6")));
  EXPECT_FALSE(model.can_cache());
  model.start_sequence();
  EXPECT_EQ(model.extend(all.data(), 4),
            "recipe mxfp6 casts activations to MX, which a key/value cache cannot follow "
            "(attention's V blocks span later positions)");
}

// Generation past the context: the cache serves the first 64 positions; after that each token
// re-runs the last 64, as generation without a cache does from the start.
TEST(KvCache, GenerationDrawsTheSameTokensWithAndWithoutTheCache) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model model(tiny(arch));
    model.params().init(11);
    ASSERT_TRUE(model.can_cache());
    train::SampleOptions options;
    options.max_new_tokens = 70;
    options.temperature = 0.9f;
    options.seed = 5;
    const std::vector<uint32_t> prompt = sequence(9, model.config().vocab);
    std::vector<uint32_t> cached = prompt, uncached = prompt;
    ASSERT_EQ(train::generate(model, &cached, options), "");
    options.use_cache = false;
    ASSERT_EQ(train::generate(model, &uncached, options), "");
    EXPECT_EQ(cached.size(), prompt.size() + 70);
    EXPECT_EQ(cached, uncached) << arch_name(arch);
  }
}

// A request for more tokens than can ever be made (the largest count there is) sizes the model
// for its context, not for prompt + count, and generation ends at a stop token as usual.
TEST(KvCache, GenerationAskedForTheLargestCountStopsAtAStopToken) {
  Model model(tiny(Arch::kGpt2));
  model.params().init(2);
  train::SampleOptions options;
  options.max_new_tokens = std::numeric_limits<int64_t>::max();
  for (uint32_t id = 0; id < uint32_t(model.config().vocab); ++id) {
    options.stop_tokens.push_back(id);
  }
  std::vector<uint32_t> tokens = sequence(4, model.config().vocab);
  ASSERT_EQ(train::generate(model, &tokens, options), "");
  EXPECT_EQ(tokens.size(), 5u);
}

}  // namespace
}  // namespace mx::nn
