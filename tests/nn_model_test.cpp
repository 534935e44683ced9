// The whole model: gradient checks of tiny GPT-2 and Llama against finite differences,
// parameter names, recipe effects and thread-count independence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "mx/nn/adamw.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"
#include "tests/next_tokens.h"

namespace mx::nn {
namespace {

struct Data : test::NextTokens {
  explicit Data(int64_t vocab) : NextTokens(vocab, 2, 8) {}
};

ModelConfig tiny(Arch arch) {
  return *model_preset("tiny", arch);
}

// The loss of a forward pass, which must succeed; a training pass keeps what backward needs.
float loss_of(Model& model, const Data& d, bool training = false) {
  float loss = 0;
  EXPECT_EQ(model.forward(d.tokens.data(), d.targets.data(), d.b, d.t, &loss, {training}), "");
  return loss;
}

// Runs forward + backward and returns the loss; gradients are left in params().grad().
float loss_and_grad(Model& model, const Data& d) {
  model.zero_grad();
  const float loss = loss_of(model, d, true);
  EXPECT_EQ(model.backward(), "");
  return loss;
}

// For each tensor, the directional derivative of the loss along the unit direction u of its
// analytic gradient g must equal |g| (and along a fixed pseudo-random direction, g . u).
// Rounding: the float32 loss (~5.5) of the forward pass carries errors of some 1e-6; over a
// central difference of step h = 1e-2 that is ~1e-4, far below the tolerance
// 2e-3 + 3% of |g|. Truncation is h^2 / 6 times a third derivative of order one, ~2e-5.
void check_model_gradients(Arch arch, bool tied) {
  ModelConfig config = tiny(arch);
  config.tied = tied;
  Model model(config);
  model.params().init(42);
  const Data d(config.vocab);
  loss_and_grad(model, d);
  Params& p = model.params();
  const std::vector<float> grad(p.grad(), p.grad() + p.size());
  const double h = 1e-2;
  int checked = 0;
  for (const ParamView& view : p.views()) {
    for (int dir = 0; dir < 2; ++dir) {
      std::vector<double> u(view.size);
      double norm = 0.0, expect = 0.0;
      for (int64_t i = 0; i < view.size; ++i) {
        const double gi = grad[view.offset + i];
        u[i] = dir == 0 ? gi : std::sin(double(i) * 12.9898 + double(view.offset) * 78.233);
        norm += u[i] * u[i];
      }
      norm = std::sqrt(norm);
      if (norm == 0.0) continue;
      for (int64_t i = 0; i < view.size; ++i) {
        u[i] /= norm;
        expect += u[i] * grad[view.offset + i];
      }
      float* w = p.data() + view.offset;
      const std::vector<float> saved(w, w + view.size);
      auto loss_at = [&](double step) {
        for (int64_t i = 0; i < view.size; ++i) w[i] = float(saved[i] + step * u[i]);
        return double(loss_of(model, d));
      };
      const double numeric = (loss_at(h) - loss_at(-h)) / (2.0 * h);
      for (int64_t i = 0; i < view.size; ++i) w[i] = saved[i];
      EXPECT_NEAR(expect, numeric, 2e-3 + 0.03 * std::fabs(expect))
          << view.name << (dir == 0 ? " along its gradient" : " along a fixed direction");
      ++checked;
    }
  }
  EXPECT_GE(checked, int(p.views().size()));
  // Sampled single parameters: the largest-gradient element of each tensor, and one at a fixed
  // pseudo-random index. Same rounding budget (~1e-4 for h = 1e-2) against 2e-4 + 5%.
  for (const ParamView& view : p.views()) {
    int64_t largest = 0;
    for (int64_t i = 1; i < view.size; ++i) {
      if (std::fabs(grad[view.offset + i]) > std::fabs(grad[view.offset + largest])) largest = i;
    }
    for (int64_t i : {largest, (view.size * 7919 / 13) % view.size}) {
      float* w = p.data() + view.offset + i;
      const float saved = *w;
      *w = float(saved + h);
      const double plus = loss_of(model, d);
      *w = float(saved - h);
      const double minus = loss_of(model, d);
      *w = saved;
      const double numeric = (plus - minus) / (2.0 * h), analytic = grad[view.offset + i];
      EXPECT_NEAR(analytic, numeric, 2e-4 + 0.05 * std::fabs(analytic))
          << view.name << "[" << i << "]";
    }
  }
}

TEST(NnModel, Gpt2TinyGradientsMatchFiniteDifferences) {
  check_model_gradients(Arch::kGpt2, true);
}

TEST(NnModel, LlamaTinyGradientsMatchFiniteDifferences) {
  check_model_gradients(Arch::kLlama, false);
}

TEST(NnModel, LlamaTiedGradientsMatchFiniteDifferences) {
  check_model_gradients(Arch::kLlama, true);
}

TEST(NnModel, ParameterNamesFollowCheckpoints) {
  Model llama(tiny(Arch::kLlama));
  const Params& p = llama.params();
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
        "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
        "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
        "model.norm.weight"}) {
    EXPECT_NE(p.find(name), nullptr) << name;
  }
  // GQA: k_proj is [n_kv_heads * head_size, dim]; tied: no lm_head.
  EXPECT_EQ(p.find("model.layers.0.self_attn.k_proj.weight")->shape,
            (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(p.find("lm_head.weight"), nullptr);
  ModelConfig untied = tiny(Arch::kLlama);
  untied.tied = false;
  EXPECT_NE(Model(untied).params().find("lm_head.weight"), nullptr);
  Model gpt2(tiny(Arch::kGpt2));
  EXPECT_NE(gpt2.params().find("transformer.wpe.weight"), nullptr);
  EXPECT_NE(gpt2.params().find("transformer.h.1.mlp.c_proj.bias"), nullptr);
  EXPECT_EQ(gpt2.params().find("transformer.h.0.mlp.c_fc.weight")->shape,
            (std::vector<int64_t>{256, 64}));
  const ModelConfig big = *model_preset("gpt2-124m", Arch::kGpt2);
  // 124,439,808 parameters in GPT-2 small (with the 1024 x 768 position table).
  EXPECT_EQ(Params(big, false).count(), 124439808);
}

// Initialization fills large views in parallel pieces; the values are those of one pass over
// the views in order, each drawn element taking the next two draws of the seed's stream.
TEST(NnModel, InitializationIsOneStreamOfDrawsInViewOrder) {
  ModelConfig c = tiny(Arch::kGpt2);
  c.vocab = 50257;  // a token embedding of 1.6M values: more than one piece
  c.dim = 32;
  c.hidden = 128;
  c.n_heads = c.n_kv_heads = 2;
  Params params(c);
  params.init(11);
  uint64_t counter = 0;
  auto uniform = [&]() {
    const uint64_t bits = splitmix64_mix(11 + (++counter) * 0x9E3779B97F4A7C15ull);
    return (double(bits >> 11) + 0.5) * 0x1.0p-53;
  };
  int64_t checked = 0;
  for (const ParamView& v : params.views()) {
    const float* p = params.data() + v.offset;
    if (v.kind == ParamKind::kNorm || v.kind == ParamKind::kBias) {
      for (int64_t i = 0; i < v.size; ++i) {
        ASSERT_EQ(p[i], v.kind == ParamKind::kNorm ? 1.0f : 0.0f) << v.name;
      }
      continue;
    }
    const bool residual = v.name.find("c_proj.weight") != std::string::npos;
    const double std = residual ? 0.02 / std::sqrt(2.0 * double(c.n_layers)) : 0.02;
    for (int64_t i = 0; i < v.size; ++i, ++checked) {
      const double r = std::sqrt(-2.0 * std::log(uniform()));
      const float want = float(std * r * std::cos(2.0 * 3.141592653589793 * uniform()));
      ASSERT_EQ(p[i], want) << v.name << " [" << i << "]";
    }
  }
  EXPECT_GT(checked, int64_t{1} << 20);
}

TEST(NnModel, GptTwoPresetsHaveThePublishedModelsParameterCounts) {
  // The counts of the released GPT-2 medium, large and XL checkpoints (tied classifier).
  const std::pair<const char*, int64_t> sizes[] = {
      {"gpt2-355m", 354823168}, {"gpt2-774m", 774030080}, {"gpt2-1558m", 1557611200}};
  for (const auto& [name, count] : sizes) {
    const std::optional<ModelConfig> c = model_preset(name, Arch::kGpt2);
    ASSERT_TRUE(c.has_value()) << name;
    EXPECT_EQ(c->head_size(), 64) << name;
    EXPECT_EQ(Params(*c, false).count(), count) << name;
    EXPECT_FALSE(model_preset(name, Arch::kLlama).has_value()) << name;
  }
}

TEST(NnModel, TwentyMillionPresetCountsTheTokenTableOnce) {
  // 50257 x 256 tokens + 1024 x 256 positions + 8 layers of (4 d^2 + 4d attention, 8 d^2 + 5d
  // MLP, 4d norms) + 2d final norm, with d = 256: the classifier is the token table.
  const int64_t d = 256, layers = 8;
  const int64_t want = 50257 * d + 1024 * d + layers * (12 * d * d + 13 * d) + 2 * d;
  const std::optional<ModelConfig> c = model_preset("gpt2-20m", Arch::kGpt2);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->head_size(), 64);
  EXPECT_EQ(Params(*c, false).count(), want);
  EXPECT_EQ(want, 19446528);
}

TEST(NnModel, Fp32RecipeIsBitwiseTheRecipeFreePathAndMxfp6DiffersSlightly) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model model(tiny(arch));
    model.params().init(7);
    const Data d(256);
    const float base = loss_and_grad(model, d);
    const std::vector<float> g0(model.params().grad(),
                                model.params().grad() + model.params().size());
    model.set_recipe(*recipe_preset("fp32"));
    EXPECT_EQ(loss_and_grad(model, d), base);
    EXPECT_EQ(std::vector<float>(model.params().grad(), model.params().grad() + g0.size()), g0);
    model.set_recipe(*recipe_preset("mxfp6"));
    const float mx = loss_and_grad(model, d);
    EXPECT_NE(mx, base);
    EXPECT_NEAR(mx, base, 0.02 * base);
    double dot = 0.0, n0 = 0.0, n1 = 0.0;
    for (size_t i = 0; i < g0.size(); ++i) {
      const double a = g0[i], b = model.params().grad()[i];
      dot += a * b, n0 += a * a, n1 += b * b;
    }
    EXPECT_GT(dot / std::sqrt(n0 * n1), 0.95) << arch_name(arch);
  }
}

TEST(NnModel, Bf16VectorOpsStayCloseAndBadInputsAreRefused) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model model(tiny(arch));
    model.params().init(5);
    const Data d(256);
    const float base = loss_and_grad(model, d);
    Recipe bf16 = *recipe_preset("bf16");
    bf16.bf16_vector_ops = true;
    model.set_recipe(bf16);
    const float rounded = loss_and_grad(model, d);
    // bf16 keeps 8 significant bits (relative rounding 2^-9): the loss moves by ~1e-3.
    EXPECT_NE(rounded, base);
    EXPECT_NEAR(rounded, base, 0.01 * base) << arch_name(arch);
    std::vector<uint32_t> bad = d.tokens;
    bad[3] = 256;
    EXPECT_EQ(model.forward(bad.data(), d.targets.data(), d.b, d.t),
              "token id 256 is not below the model's vocabulary of 256");
    EXPECT_EQ(model.forward(d.tokens.data(), nullptr, 1, 65),
              "a pass of 1 x 65 tokens does not fit this model (context 64)");
    EXPECT_NE(model.backward(), "");  // no valid forward pass to go back through
  }
}

// A recipe whose blocks this model's shapes cannot take fails the pass with the quantizer's
// reason; it once left the matmul to multiply stale scratch memory (loss 7.44 instead of 1.75).
TEST(NnModel, ARecipeTheShapesCannotTakeFailsThePass) {
  Model model(tiny(Arch::kGpt2));
  model.params().init(5);
  Recipe huge_blocks;
  ASSERT_EQ(
      parse_recipe_json(R"({"act_fwd": {"format": "mxfp8_e4m3", "block": 8192}})", &huge_blocks),
      "");
  model.set_recipe(huge_blocks);
  const Data d(256);
  float loss = -1;
  const std::string e = model.forward(d.tokens.data(), d.targets.data(), d.b, d.t, &loss);
  EXPECT_EQ(e.rfind("recipe role 'act_fwd' on a [", 0), 0u) << e;
  EXPECT_NE(e.find("mostly padding"), std::string::npos) << e;
  EXPECT_EQ(loss, -1);  // no loss reported
  model.set_recipe(*recipe_preset("fp32"));
  EXPECT_EQ(model.forward(d.tokens.data(), d.targets.data(), d.b, d.t, &loss), "");  // recovers
}

// Activations are counted against the memory left before they are allocated.
TEST(NnModel, APassLargerThanMemoryIsRefusedBeforeAllocating) {
  Model model(tiny(Arch::kLlama));
  const std::string e = model.reserve(int64_t{1} << 40, 64);
  EXPECT_EQ(e.rfind("a pass of 1099511627776 x 64 tokens needs ", 0), 0u) << e;
  EXPECT_NE(e.find(" available"), std::string::npos) << e;
  EXPECT_EQ(model.reserve(4, 64), "");
  // Counted in double: absurd shapes give a huge figure, not an overflow.
  EXPECT_GT(Model::activation_bytes(tiny(Arch::kGpt2), int64_t{1} << 62, 64), 1e20);
}

// A CPU backend that asks for room past each product input, as the CUDA backend does under MX
// recipes (Backend::input_kept_count), and records the product inputs it is handed. The CPU
// keeps nothing there, so its results are those of the CpuBackend.
class RoomyCpu : public CpuBackend {
 public:
  explicit RoomyCpu(int64_t available) : available_(available) {}
  int64_t input_kept_count(int64_t m, int64_t k, const Recipe&) const override { return m * k; }
  int64_t memory_available() override { return available_; }
  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override {
    forward_room.push_back(x.n - m * k);
    CpuBackend::matmul_forward(y, x, w, bias, m, k, n, recipe, key);
  }
  void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key) override {
    backward_room.push_back(x.n - m * k);
    CpuBackend::matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key);
  }
  std::vector<int64_t> forward_room, backward_room;  // x.n - m * k of each product's input

 private:
  int64_t available_;
};

TEST(NnModel, ProductInputsCarryTheBackendsRoomInTrainingPassesOnly) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    SCOPED_TRACE(arch == Arch::kGpt2 ? "gpt2" : "llama");
    const ModelConfig config = tiny(arch);
    const Data d(config.vocab);
    const int64_t n = d.b * d.t;
    auto roomy = std::make_unique<RoomyCpu>(int64_t{1} << 40);
    RoomyCpu& be = *roomy;
    Model model(config, std::move(roomy));
    model.params().init(5);
    Model plain(config, std::make_unique<CpuBackend>());
    plain.params().init(5);
    EXPECT_EQ(loss_and_grad(model, d), loss_and_grad(plain, d));
    EXPECT_EQ(
        std::vector<float>(model.params().grad(), model.params().grad() + model.params().size()),
        std::vector<float>(plain.params().grad(), plain.params().grad() + plain.params().size()));
    // Each product's input has room for m * k more values: the width of its own input (dim or
    // hidden), as every input was sized for n tokens.
    ASSERT_FALSE(be.forward_room.empty());
    for (const int64_t room : be.forward_room) {
      EXPECT_TRUE(room == n * config.dim || room == n * config.hidden) << room;
    }
    ASSERT_FALSE(be.backward_room.empty());
    for (const int64_t room : be.backward_room) {
      EXPECT_TRUE(room == n * config.dim || room == n * config.hidden) << room;
    }
    // An inference pass hands over the pass's values only.
    be.forward_room.clear();
    loss_of(model, d);
    ASSERT_FALSE(be.forward_room.empty());
    for (const int64_t room : be.forward_room) EXPECT_EQ(room, 0);
  }
}

TEST(NnModel, TheRoomForKeptCastsIsLeftOutWhereMemoryIsShort) {
  const ModelConfig config = tiny(Arch::kGpt2);
  Model plain(config, std::make_unique<CpuBackend>());
  ASSERT_EQ(plain.reserve(4, 64), "");
  const double without = plain.reserved_activation_bytes();
  Model roomy(config, std::make_unique<RoomyCpu>(int64_t{1} << 40));
  ASSERT_EQ(roomy.reserve(4, 64), "");
  const double with = roomy.reserved_activation_bytes();
  // ln1, atty and ln2 of each layer and the final norm's output, width 64; each layer's act,
  // width 256; float32 activations on the CPU.
  const double n = 4 * 64;
  EXPECT_EQ(with - without, 4.0 * n * (2 * (3 * 64 + 256) + 64));
  // Room that would leave less than its own size free is not taken; the pass still fits.
  Model tight(config, std::make_unique<RoomyCpu>(int64_t(with)));
  EXPECT_EQ(tight.reserve(4, 64), "");
  EXPECT_EQ(tight.reserved_activation_bytes(), without);
}

// Parameter gradients accumulate and the loss gradient is scaled by grad_scale: two passes at
// half scale add up to one at full scale. Halving is exact, but the second pass adds its terms
// to a running sum one by one where a single pass sums them from zero: the two orders differ by
// float32 rounding, a few 2^-24 of the largest gradient (the bound below is about 170 of them).
TEST(NnModel, GradientsOfMicroBatchesAccumulateToTheFullBatch) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    Model model(tiny(arch));
    model.params().init(9);
    const Data d(256);
    loss_and_grad(model, d);
    const std::vector<float> full(model.params().grad(),
                                  model.params().grad() + model.params().size());
    model.zero_grad();
    PassOptions half;
    half.training = true;
    half.grad_scale = 0.5f;
    for (int micro = 0; micro < 2; ++micro) {
      float loss = 0;
      ASSERT_EQ(model.forward(d.tokens.data(), d.targets.data(), d.b, d.t, &loss, half), "");
      ASSERT_EQ(model.backward(), "");
    }
    float largest = 0;
    for (const float g : full) largest = std::max(largest, std::fabs(g));
    for (size_t i = 0; i < full.size(); ++i) {
      ASSERT_NEAR(model.params().grad()[i], full[i], 1e-5f * largest)
          << arch_name(arch) << " " << i;
    }
    // A training pass hands its logits over to their gradient; an inference pass keeps them.
    EXPECT_EQ(model.logits(), nullptr);
    ASSERT_EQ(model.forward(d.tokens.data(), nullptr, d.b, d.t), "");
    EXPECT_NE(model.logits(), nullptr);
  }
}

TEST(NnModel, ResultsDoNotDependOnTheThreadCount) {
  for (Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    std::vector<float> first;
    float first_loss = 0.0f;
    for (int threads : {1, 2, 5}) {
      Model model(tiny(arch), std::make_unique<CpuBackend>(threads));
      model.params().init(3);
      model.set_recipe(*recipe_preset("mxfp6"));
      const float loss = loss_and_grad(model, Data(256));
      std::vector<float> g(model.params().grad(), model.params().grad() + model.params().size());
      if (first.empty()) {
        first = g, first_loss = loss;
      } else {
        EXPECT_EQ(loss, first_loss);
        EXPECT_EQ(g, first);
      }
    }
  }
}

TEST(NnModel, AdamWScheduleAndClipping) {
  LrSchedule s{1e-3f, 1e-4f, 10, 110};
  EXPECT_FLOAT_EQ(s.at(0), 1e-4f);
  EXPECT_FLOAT_EQ(s.at(9), 1e-3f);
  EXPECT_FLOAT_EQ(s.at(60), 5.5e-4f);
  EXPECT_FLOAT_EQ(s.at(500), 1e-4f);
  Model model(tiny(Arch::kLlama));
  model.params().init(1);
  loss_and_grad(model, Data(256));
  const double norm = global_grad_norm(model);
  EXPECT_NEAR(clip_grad_norm(model, norm / 2), norm, 1e-9 * norm);
  EXPECT_NEAR(global_grad_norm(model), norm / 2, 1e-4 * norm);
  // Decay applies to matrices only: with zero gradients a norm weight stays, a matrix shrinks.
  model.zero_grad();
  AdamW opt(model, AdamWConfig{});
  float* norm_w = model.params().get("model.norm.weight");
  float* q = model.params().get("model.layers.0.self_attn.q_proj.weight");
  const float q0 = q[0];
  opt.step(model, 0.1f);
  EXPECT_EQ(norm_w[0], 1.0f);
  EXPECT_FLOAT_EQ(q[0], q0 * (1.0f - 0.1f * 0.1f));
}

// Clipping inside the step (the trainer's way) moves the weights and moments to the bits that
// scaling the gradients first and then stepping gives, and leaves the gradients as they were.
TEST(NnModel, AdamWTakesTheClippingScaleAsItReadsTheGradients) {
  Model model(tiny(Arch::kGpt2));
  model.params().init(3);
  loss_and_grad(model, Data(256));
  const Params& p = model.params();
  const std::vector<float> weights(p.data(), p.data() + p.size());
  const std::vector<float> grads(p.grad(), p.grad() + p.size());
  const double norm = global_grad_norm(model);
  const float factor = clip_scale(norm, norm / 3);
  ASSERT_LT(factor, 1.0f);
  EXPECT_EQ(clip_scale(norm, 2 * norm), 1.0f);
  EXPECT_EQ(clip_scale(norm, 0), 1.0f);  // 0: no clipping

  AdamW separate(model, AdamWConfig{});
  clip_grad_norm(model, norm / 3);
  separate.step(model, 0.01f);
  const std::vector<float> want(p.data(), p.data() + p.size());

  std::copy(weights.begin(), weights.end(), model.params().data());
  std::copy(grads.begin(), grads.end(), model.params().grad());
  AdamW folded(model, AdamWConfig{});
  folded.step(model, 0.01f, factor);
  EXPECT_EQ(std::vector<float>(p.data(), p.data() + p.size()), want);
  EXPECT_EQ(folded.m(), separate.m());
  EXPECT_EQ(folded.v(), separate.v());
  EXPECT_EQ(std::vector<float>(p.grad(), p.grad() + p.size()), grads);
}

TEST(NnModel, SamplingIsSeededAndRespectsTopK) {
  const std::vector<float> logits = {0.0f, 3.0f, 1.0f, 2.9f, -1.0f};
  uint64_t a = 5, b = 5;
  for (int i = 0; i < 50; ++i) {
    const uint32_t x = sample_token(logits.data(), 5, 2, 1.0f, &a);
    EXPECT_TRUE(x == 1 || x == 3);
    EXPECT_EQ(x, sample_token(logits.data(), 5, 2, 1.0f, &b));
  }
  EXPECT_EQ(sample_token(logits.data(), 5, 0, 0.0f, &a), 1u);
}

// Data-parallel training starts each range's reduction when backward() reports it: the ranges
// must cover every parameter once, and each range's gradients must already be final then (the
// CPU backend runs each op as it is queued, so the gradients at the report are the queued
// work's).
TEST(ModelBackward, ReportsEveryParameterOnceWhenItsGradientsAreFinal) {
  for (const Arch arch : {Arch::kGpt2, Arch::kLlama}) {
    for (const bool tied : {true, false}) {
      ModelConfig config = tiny(arch);
      config.tied = tied;
      config.n_layers = 3;
      Model model(config);
      model.params().init(42);
      const Data d(config.vocab);
      model.zero_grad();
      loss_of(model, d, true);
      const float* g = model.params().grad();
      std::vector<std::pair<int64_t, int64_t>> ranges;
      std::vector<std::vector<float>> at_report;
      ASSERT_EQ(model.backward([&](int64_t first, int64_t count) {
        ranges.emplace_back(first, count);
        at_report.emplace_back(g + first, g + first + count);
      }),
                "");
      ASSERT_EQ(ranges.size(), size_t(config.n_layers + (tied ? 2 : 3)));
      // The first report is the classifier's (untied) or the final norm's; the last the
      // embeddings', at the buffer's start.
      EXPECT_EQ(ranges.front().first, tied ? model.params().norm_w() : model.params().classifier());
      EXPECT_EQ(ranges.back().first, 0);
      for (size_t i = 0; i < ranges.size(); ++i) {
        const auto [first, count] = ranges[i];
        EXPECT_EQ(at_report[i], std::vector<float>(g + first, g + first + count))
            << "range " << i << " changed after it was reported";
      }
      std::sort(ranges.begin(), ranges.end());
      int64_t next = 0;
      for (const auto& [first, count] : ranges) {
        EXPECT_EQ(first, next);
        EXPECT_GT(count, 0);
        next = first + count;
      }
      EXPECT_EQ(next, model.params().size());
    }
  }
}

// A CPU backend that records the size of `saved` each attention forward is handed, and asks
// inference forwards for a sentinel count (the CPU's forward itself needs its whole buffer,
// which the view still lies within).
class SavedSizes : public CpuBackend {
 public:
  static constexpr int64_t kInferenceCount = 3;
  int64_t attn_inference_saved_count(const AttnShape&, const Recipe&) const override {
    return kInferenceCount;
  }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                         const Recipe& recipe, SrKey key) override {
    seen.push_back(saved.n);
    CpuBackend::attention_forward(out, saved, q, k, v, s, recipe, key);
  }
  std::vector<int64_t> seen;
};

// A forward with no backward to follow is handed only what the backend says inference needs:
// the GPU's then skips P v_dw, which only its backward reads.
TEST(ModelForward, HandsInferenceAttentionOnlyWhatTheBackendAsksFor) {
  ModelConfig config = tiny(Arch::kGpt2);
  config.n_layers = 2;
  auto backend = std::make_unique<SavedSizes>();
  SavedSizes* sizes = backend.get();
  Model model(config, std::move(backend));
  model.params().init(3);
  const Data d(config.vocab);
  loss_of(model, d, true);
  const int64_t training = sizes->attn_saved_count(
      {d.b, d.t, config.n_heads, config.n_kv_heads, config.head_size()}, model.recipe());
  EXPECT_EQ(sizes->seen, std::vector<int64_t>(2, training));
  sizes->seen.clear();
  loss_of(model, d, false);
  EXPECT_EQ(sizes->seen, std::vector<int64_t>(2, SavedSizes::kInferenceCount));
}

// A CPU backend that notes the act_fwd cast each kind of product was given.
class RecipeSpy : public CpuBackend {
 public:
  OperandCast::Kind linear = OperandCast::Kind::kNone, attention = OperandCast::Kind::kNone;
  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override {
    linear = recipe.act_fwd.kind;
    CpuBackend::matmul_forward(y, x, w, bias, m, k, n, recipe, key);
  }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                         const Recipe& recipe, SrKey key) override {
    attention = recipe.act_fwd.kind;
    CpuBackend::attention_forward(out, saved, q, k, v, s, recipe, key);
  }
};

TEST(NnModel, Bf16AttentionLeavesAttentionInBfloat16AndTheLinearLayersInMxAndAllowsACache) {
  const ModelConfig config = tiny(Arch::kGpt2);
  auto spy = std::make_unique<RecipeSpy>();
  RecipeSpy* seen = spy.get();
  Model model(config, std::move(spy));
  model.params().init(7);
  model.upload_params();
  Recipe recipe = *recipe_preset("mxfp4");
  model.set_recipe(recipe);
  const Data d(config.vocab);
  const float mx_loss = loss_of(model, d);
  EXPECT_EQ(seen->attention, OperandCast::Kind::kMx);
  EXPECT_FALSE(model.can_cache());  // MX casts of V along the sequence reach later positions
  recipe.bf16_attention = true;
  model.set_recipe(recipe);
  const float bf16_attention_loss = loss_of(model, d);
  EXPECT_EQ(seen->attention, OperandCast::Kind::kBF16);
  EXPECT_EQ(seen->linear, OperandCast::Kind::kMx);
  EXPECT_NE(mx_loss, bf16_attention_loss);
  EXPECT_TRUE(model.can_cache());
}

}  // namespace
}  // namespace mx::nn
