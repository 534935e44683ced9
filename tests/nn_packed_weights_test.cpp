// Inference from packed MX weights (Model::pack_weights, CpuBackend::pack_weight): the products
// read the blocks that the recipe's weight cast makes, so they equal the cast path's products
// up to the order of their sums.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"

namespace mx::nn {
namespace {

ModelConfig tiny(Arch arch) {
  return *model_preset("tiny", arch);
}

Recipe weights_only(const std::string& format) {
  Recipe r;
  const std::string json = R"({"name": "w", "weight_fwd": ")" + format + R"("})";
  if (std::string e = parse_recipe_json(json, &r); !e.empty()) ADD_FAILURE() << e;
  return r;
}

std::vector<uint32_t> tokens(int64_t n, int64_t vocab) {
  std::vector<uint32_t> t;
  for (int64_t i = 0; i < n; ++i) t.push_back(uint32_t((i * 29 + 3) % vocab));
  return t;
}

std::vector<float> logits_of(Model& model, const std::vector<uint32_t>& t) {
  EXPECT_EQ(model.forward(t.data(), nullptr, 2, int64_t(t.size()) / 2), "");
  return std::vector<float>(model.logits(), model.logits() + t.size() * model.config().vocab);
}

// Each logit is a float32 sum; the two paths add the same products in other orders, so they
// differ by float32 rounding only. The tiny models' logits stay below 2 in magnitude, where
// 2e-6 is some 16 units in the last place; a wrong block or scale would move them by 1e-2.
TEST(PackedWeights, LogitsEqualTheCastPathsUpToSummationOrder) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    for (const char* format : {"mxfp4_e2m1", "mxfp6_e2m3", "mxfp8_e4m3", "mxint8"}) {
      Model cast(tiny(arch)), packed(tiny(arch));
      cast.params().init(9);
      packed.params().init(9);
      cast.set_recipe(weights_only(format));
      packed.set_recipe(weights_only(format));
      // q, k, v, o, fc, proj (and Llama's up) per layer, and the classifier.
      EXPECT_EQ(packed.pack_weights(), 2 * (arch == Arch::kLlama ? 7 : 6) + 1);
      const std::vector<uint32_t> t = tokens(40, cast.config().vocab);
      const std::vector<float> a = logits_of(cast, t), b = logits_of(packed, t);
      double worst = 0;
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
      EXPECT_GT(worst, 0.0) << "the packed path did not run";
      EXPECT_LT(worst, 2e-6) << arch_name(arch) << " " << format;
    }
  }
}

// Under bf16_classifier the classifier's weight is cast to bfloat16, not packed: the blocks'
// weights pack, and with their FP32 copies released the logits stay those of the cast path.
TEST(PackedWeights, ABf16ClassifierIsNotPackedAndKeepsItsFp32Copy) {
  Recipe recipe = weights_only("mxfp4_e2m1");
  recipe.bf16_classifier = true;
  Model cast(tiny(Arch::kGpt2)), packed(tiny(Arch::kGpt2));
  for (Model* m : {&cast, &packed}) {
    m->params().init(9);
    m->set_recipe(recipe);
  }
  EXPECT_EQ(packed.pack_weights(/*release_fp32=*/true), 2 * 6);
  const std::vector<uint32_t> t = tokens(40, cast.config().vocab);
  const std::vector<float> a = logits_of(cast, t), b = logits_of(packed, t);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_LT(worst, 2e-6);
}

TEST(PackedWeights, OtherRecipesStillCastTheFp32WeightsAndBackwardIsRefused) {
  Model plain(tiny(Arch::kGpt2)), packed(tiny(Arch::kGpt2));
  plain.params().init(4);
  packed.params().init(4);
  packed.set_recipe(weights_only("mxfp4_e2m1"));
  ASSERT_GT(packed.pack_weights(), 0);
  // Another recipe's products do not read the packed blocks: fp32 gives the plain bits.
  packed.set_recipe(*recipe_preset("fp32"));
  const std::vector<uint32_t> t = tokens(16, plain.config().vocab);
  const std::vector<float> a = logits_of(plain, t), b = logits_of(packed, t);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  float loss = 0;
  ASSERT_EQ(packed.forward(t.data(), t.data(), 2, 8, &loss, {true}), "");
  EXPECT_EQ(packed.backward(), "a model with packed weights is for inference only");
}

TEST(PackedWeights, CastsThatCannotBePackedLeaveTheWeightsAsTheyAre) {
  Model model(tiny(Arch::kLlama));
  model.params().init(2);
  Recipe stochastic = weights_only("mxfp4_e2m1");
  stochastic.weight_fwd.spec.rounding = Rounding::kStochastic;
  model.set_recipe(stochastic);
  EXPECT_EQ(model.pack_weights(), 0);
  Recipe blocks_of_16 = weights_only("mxfp4_e2m1");
  blocks_of_16.weight_fwd.spec.block_size = 16;
  model.set_recipe(blocks_of_16);
  EXPECT_EQ(model.pack_weights(), 0);
  model.set_recipe(*recipe_preset("bf16"));
  EXPECT_EQ(model.pack_weights(), 0);
  EXPECT_FALSE(model.weights_packed());
}

// Releasing the FP32 copies changes no logit (the packed products never read them), and a
// recipe that would read them is refused rather than run on zeros.
TEST(PackedWeights, ReleasedFp32CopiesChangeNoLogitAndRefuseOtherRecipes) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model kept(tiny(arch)), released(tiny(arch));
    kept.params().init(6);
    released.params().init(6);
    const Recipe w4 = weights_only("mxfp4_e2m1");
    kept.set_recipe(w4);
    released.set_recipe(w4);
    ASSERT_GT(kept.pack_weights(), 0);
    ASSERT_EQ(released.pack_weights(/*release_fp32=*/true), kept.pack_weights());
    const std::vector<uint32_t> t = tokens(32, kept.config().vocab);
    const std::vector<float> a = logits_of(kept, t), b = logits_of(released, t);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << arch_name(arch);
    released.set_recipe(weights_only("mxfp8_e4m3"));
    EXPECT_EQ(released.forward(t.data(), nullptr, 2, 16),
              "recipe w cannot run: the weights are packed for another weight cast and their "
              "FP32 copies were released");
    released.start_sequence();
    EXPECT_NE(released.extend(t.data(), 4), "");
  }
}

// An MX model file's weights are MX values already: packed as the file's blocks, products with
// no weight cast read them, and only the FP32 copies the blocks reproduce exactly are released.
TEST(PackedWeights, StoredMxWeightsRunPackedUnderARecipeWithoutWeightCasts) {
  Model stored(tiny(Arch::kLlama)), plain(tiny(Arch::kLlama));
  stored.params().init(8);
  // What loading a file of MXFP4 attention and MXFP8 MLP matrices leaves: their decoded values.
  std::map<std::string, QuantSpec> specs;
  for (const ParamView& v : stored.params().views()) {
    const bool attention = v.name.find("attn") != std::string::npos;
    const bool mlp = v.name.find("mlp") != std::string::npos;
    if (v.shape.size() != 2 || !(attention || mlp)) continue;
    QuantSpec spec;
    spec.format = attention ? ElementFormat::kE2M1 : ElementFormat::kE4M3;
    float* w = stored.params().data() + v.offset;
    ASSERT_EQ(mx::cpu::fake_quantize(w, DType::kF32, v.shape, spec, DType::kF32, w), "");
    specs[v.name] = spec;
  }
  ASSERT_EQ(specs.size(), 14u) << "q, k, v, o, gate, up, down of two layers";
  std::copy(stored.params().data(), stored.params().data() + stored.params().size(),
            plain.params().data());
  // A name whose values are not its blocks' (the embedding, never cast) is not counted.
  specs["model.embed_tokens.weight"] = QuantSpec{};
  EXPECT_EQ(stored.pack_stored_weights(specs, /*release_fp32=*/true), 14);
  const std::vector<uint32_t> t = tokens(24, plain.config().vocab);
  const std::vector<float> a = logits_of(plain, t), b = logits_of(stored, t);
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
  EXPECT_GT(worst, 0.0) << "the packed path did not run";
  EXPECT_LT(worst, 2e-6);
  stored.set_recipe(weights_only("mxfp4_e2m1"));
  EXPECT_EQ(stored.forward(t.data(), nullptr, 2, 12),
            "recipe w cannot run: it casts weights, and the FP32 copies of the file's MX weights "
            "were released when they were packed");
}

// A backend made for fast products runs mx_matmul's fast mode (x quantized to MXINT8;
// NUMERICS section 16) on its packed weights, bit for bit; a model on it moves its logits by
// that quantization's error, well above exact mode's summation-order differences.
TEST(PackedWeights, FastProductsRunWhereTheBackendIsMadeForThem) {
  const int64_t m = 3, k = 96, n = 40;
  std::vector<float> w(size_t(n * k)), x(size_t(m * k));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i) * 0.37f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(float(i) * 0.11f);
  const Recipe w4 = weights_only("mxfp4_e2m1");
  std::vector<float> y(size_t(m * n));
  CpuBackend backend(1, mx::cpu::MatmulMode::kFast);
  const Buf wb = backend.wrap(w.data(), BufType::kF32, n * k);
  ASSERT_NE(backend.pack_weight(wb, n, k, w4.weight_fwd), Backend::Packed::kNo);
  backend.matmul_forward(backend.wrap(y.data(), BufType::kF32, m * n),
                         backend.wrap(x.data(), BufType::kF32, m * k), wb, Buf{}, m, k, n, w4, {});
  ASSERT_EQ(backend.take_error(), "");
  MxTensor packed;
  const int64_t shape[2] = {n, k};
  ASSERT_EQ(mx::cpu::quantize(w.data(), DType::kF32, shape, w4.weight_fwd.spec, &packed), "");
  mx::cpu::MatmulOptions fast, exact;
  fast.mode = mx::cpu::MatmulMode::kFast;
  std::vector<float> want(y.size()), exact_y(y.size());
  ASSERT_EQ(mx::cpu::mx_matmul(packed, x.data(), DType::kF32, m, want.data(), fast), "");
  ASSERT_EQ(mx::cpu::mx_matmul(packed, x.data(), DType::kF32, m, exact_y.data(), exact), "");
  EXPECT_EQ(y, want);
  EXPECT_NE(y, exact_y);

  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model exact_model(tiny(arch));
    Model fast_model(tiny(arch), std::make_unique<CpuBackend>(0, mx::cpu::MatmulMode::kFast));
    for (Model* model : {&exact_model, &fast_model}) {
      model->params().init(4);
      model->set_recipe(w4);
      ASSERT_GT(model->pack_weights(), 0);
    }
    const std::vector<uint32_t> t = tokens(32, exact_model.config().vocab);
    const std::vector<float> a = logits_of(exact_model, t), b = logits_of(fast_model, t);
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, double(std::fabs(a[i] - b[i])));
    EXPECT_GT(worst, 1e-4) << arch_name(arch) << ": the fast products did not run";
    EXPECT_LT(worst, 5e-2) << arch_name(arch);
  }
}

// A file whose token embedding is MX blocks too (mx quantize --include-embeddings): the
// embedding's rows are looked up in the blocks, so its FP32 copy goes as well, tied to the
// classifier (GPT-2) or not (Llama), and the logits stay those of the unreleased model bit for bit.
TEST(PackedWeights, AnEmbeddingStoredAsExactBlocksIsLookedUpInThemAndReleased) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    SCOPED_TRACE(arch_name(arch));
    ModelConfig config = tiny(arch);
    config.tied = arch == Arch::kGpt2;
    Model released(config), kept(config);
    released.params().init(9);
    std::map<std::string, QuantSpec> specs;
    for (const ParamView& v : released.params().views()) {
      if (v.shape.size() != 2 || v.name.find("wpe") != std::string::npos) continue;
      QuantSpec spec;
      spec.format = ElementFormat::kE2M1;
      float* w = released.params().data() + v.offset;
      ASSERT_EQ(mx::cpu::fake_quantize(w, DType::kF32, v.shape, spec, DType::kF32, w), "");
      specs[v.name] = spec;
    }
    std::copy(released.params().data(), released.params().data() + released.params().size(),
              kept.params().data());
    const int packed = kept.pack_stored_weights(specs);
    ASSERT_EQ(released.pack_stored_weights(specs, /*release_fp32=*/true),
              packed + (config.tied ? 0 : 1));
    // The pages wholly inside the table read as zeros once released (its edges share pages).
    auto zeros_in_table = [&](Model& m) {
      const float* table = m.params().data() + m.params().wte();
      return std::count(table, table + config.vocab * config.dim, 0.0f);
    };
    EXPECT_LT(zeros_in_table(kept), config.vocab * config.dim / 2);
    EXPECT_GT(zeros_in_table(released), config.vocab * config.dim * 9 / 10)
        << "the embedding's FP32 pages were not released";
    const std::vector<uint32_t> t = tokens(32, config.vocab);
    const std::vector<float> a = logits_of(kept, t), b = logits_of(released, t);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  }
}

}  // namespace
}  // namespace mx::nn
