// Post-training quantization of whole models (mx/ptq/model_ptq.h) and the layer-wise passes
// it runs on.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "mx/core/quantize_ref.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/nn/model.h"
#include "mx/ptq/fp32_targets.h"
#include "mx/ptq/hessian.h"
#include "mx/ptq/model_ptq.h"

namespace mx::ptq {
namespace {

using nn::LinearSite;

constexpr LinearSite kSites[] = {LinearSite::kQ,       LinearSite::kK,  LinearSite::kV,
                                 LinearSite::kAttnOut, LinearSite::kFc, LinearSite::kUp,
                                 LinearSite::kProj};

std::unique_ptr<nn::Model> tiny_model(nn::Arch arch, int threads = 0) {
  auto model = std::make_unique<nn::Model>(*nn::model_preset("tiny", arch),
                                           std::make_unique<nn::CpuBackend>(threads));
  model->params().init(5);
  return model;
}

std::vector<uint32_t> calibration(int64_t sequences, int64_t t, int64_t vocab) {
  std::vector<uint32_t> tokens;
  uint64_t s = 12345;
  for (int64_t i = 0; i < sequences * t; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tokens.push_back(uint32_t((s >> 33) % uint64_t(vocab)));
  }
  return tokens;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Logits of the model on `tokens` (b sequences of t).
std::vector<float> logits_of(nn::Model& model, const std::vector<uint32_t>& tokens, int64_t b,
                             int64_t t) {
  EXPECT_EQ(model.forward(tokens.data(), nullptr, b, t), "");
  return std::vector<float>(model.logits(), model.logits() + b * t * model.config().vocab);
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

TEST(LayerwisePasses, GiveEveryLinearLayerTheInputTheWholeForwardGives) {
  for (nn::Arch arch : {nn::Arch::kGpt2, nn::Arch::kLlama}) {
    auto model = tiny_model(arch);
    const int64_t b = 2, t = 16;
    const std::vector<uint32_t> tokens = calibration(b, t, model->config().vocab);
    ASSERT_EQ(model->forward(tokens.data(), nullptr, b, t), "");
    std::vector<std::vector<float>> whole;
    std::vector<float> in;
    for (int64_t l = 0; l < model->config().n_layers; ++l) {
      for (LinearSite s : kSites) {
        ASSERT_EQ(model->linear_input(l, s, &in), "");
        whole.push_back(in);
      }
    }
    std::vector<float> x(size_t(b * t * model->config().dim));
    ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
    size_t i = 0;
    for (int64_t l = 0; l < model->config().n_layers; ++l) {
      ASSERT_EQ(model->forward_block(l, x.data(), b, t), "");
      for (LinearSite s : kSites) {
        ASSERT_EQ(model->linear_input(l, s, &in), "");
        EXPECT_TRUE(same_bits(in, whole[i++])) << l << " " << int(s);
      }
    }
  }
}

// Layer-wise passes keep nothing for a backward: one block's activations serve every block,
// and the classifier's are not reserved; a whole pass afterwards reserves all of them again.
TEST(LayerwisePasses, GramOfALinearInputIsTheHessianOfItsCastRows) {
  auto model = tiny_model(nn::Arch::kLlama);
  const int64_t b = 2, t = 16;
  const std::vector<uint32_t> tokens = calibration(b, t, model->config().vocab);
  std::vector<float> x(size_t(b * t * model->config().dim)), side(x.size() * 4), in, scratch;
  ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
  ASSERT_EQ(model->forward_block_step(0, nn::BlockStep::kNorm1, x.data(), side.data(), b, t), "");
  ASSERT_EQ(model->linear_input(0, LinearSite::kQ, &in), "");
  const nn::OperandCast cast = nn::recipe_preset("mxfp4")->act_fwd;
  const int64_t k = model->config().dim;
  std::string error;
  const float* cast_rows =
      nn::cpu::cast_operand(in.data(), b * t, k, 1, cast, "act_fwd", 77, scratch, &error, 0);
  ASSERT_EQ(error, "");
  std::vector<float> want(size_t(k * k), 0.0f), got;
  accumulate_hessian(want.data(), cast_rows, b * t, k);
  ASSERT_EQ(model->linear_input_gram(0, LinearSite::kQ, cast, 77, &got), "");
  EXPECT_TRUE(same_bits(got, want));
}

// The product of other rows with a linear input is the weight gradient's product, uncast: on
// the CPU, the same float32 sums as the host's sgemm of rᵀ X.
TEST(LayerwisePasses, ProductOfRowsWithALinearInputIsTheirUncastCrossProduct) {
  auto model = tiny_model(nn::Arch::kGpt2);
  const int64_t b = 2, t = 16;
  const std::vector<uint32_t> tokens = calibration(b, t, model->config().vocab);
  const int64_t dim = model->config().dim, hidden = model->config().hidden;
  std::vector<float> x(size_t(b * t * dim)), side(size_t(b * t * hidden)), in;
  ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
  for (nn::BlockStep step : {nn::BlockStep::kNorm1, nn::BlockStep::kAttention,
                             nn::BlockStep::kAttnResidual, nn::BlockStep::kMlp}) {
    ASSERT_EQ(model->forward_block_step(0, step, x.data(), side.data(), b, t), "");
  }
  ASSERT_EQ(model->linear_input(0, LinearSite::kProj, &in), "");
  std::vector<float> rows(in.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = float(int64_t(i % 7) - 3) * 0.25f;
  std::vector<float> got;
  ASSERT_EQ(model->linear_input_product(0, LinearSite::kProj, rows, &got), "");
  ASSERT_EQ(int64_t(got.size()), hidden * hidden);
  for (int64_t i = 0; i < hidden; i += 37) {
    for (int64_t j = 0; j < hidden; j += 29) {
      double want = 0;
      for (int64_t r = 0; r < b * t; ++r) {
        want += double(rows[size_t(r * hidden + i)]) * in[size_t(r * hidden + j)];
      }
      EXPECT_NEAR(got[size_t(i * hidden + j)], want, 1e-5 * (1 + std::fabs(want))) << i << " " << j;
    }
  }
  std::vector<float> short_rows(rows.begin(), rows.end() - 1);
  EXPECT_NE(model->linear_input_product(0, LinearSite::kProj, short_rows, &got), "");
}

TEST(LayerwisePasses, ReserveOneBlocksActivations) {
  nn::ModelConfig c = tiny_model(nn::Arch::kGpt2)->config();
  c.n_layers = 6;
  auto model = std::make_unique<nn::Model>(c);
  model->params().init(3);
  const int64_t b = 2, t = 16;
  const std::vector<uint32_t> tokens = calibration(b, t, c.vocab);
  std::vector<float> x(size_t(b * t * c.dim));
  ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
  for (int64_t l = 0; l < c.n_layers; ++l) ASSERT_EQ(model->forward_block(l, x.data(), b, t), "");
  const double layerwise = model->reserved_activation_bytes();
  ASSERT_EQ(model->forward(tokens.data(), nullptr, b, t), "");
  const double whole = model->reserved_activation_bytes();
  EXPECT_GT(layerwise, 0.0);
  EXPECT_LT(layerwise * double(c.n_layers) / 2, whole);
  EXPECT_DOUBLE_EQ(whole, nn::Model::activation_bytes(c, b, t));
}

TEST(LayerwisePasses, TheBlockStepsInTurnAreTheWholeBlock) {
  for (nn::Arch arch : {nn::Arch::kGpt2, nn::Arch::kLlama}) {
    auto model = tiny_model(arch);
    const nn::ModelConfig& c = model->config();
    const int64_t b = 2, t = 16, n = b * t;
    const std::vector<uint32_t> tokens = calibration(b, t, c.vocab);
    std::vector<float> whole(size_t(n * c.dim)), x, side(size_t(n * c.hidden), NAN), in, want;
    ASSERT_EQ(model->embed(tokens.data(), b, t, whole.data()), "");
    x = whole;
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::vector<float> block_input = x;
      ASSERT_EQ(model->forward_block(l, whole.data(), b, t), "");
      std::vector<std::vector<float>> inputs;
      for (LinearSite s : kSites) {
        ASSERT_EQ(model->linear_input(l, s, &in), "");
        inputs.push_back(in);
      }
      // Each step ends at the inputs the whole block gave, and the last at its output.
      const std::pair<nn::BlockStep, LinearSite> steps[] = {
          {nn::BlockStep::kNorm1, LinearSite::kQ},
          {nn::BlockStep::kAttention, LinearSite::kAttnOut},
          {nn::BlockStep::kAttnResidual, LinearSite::kFc},
          {nn::BlockStep::kMlp, LinearSite::kProj}};
      for (const auto& [step, site] : steps) {
        ASSERT_EQ(model->forward_block_step(l, step, x.data(), side.data(), b, t), "");
        ASSERT_EQ(model->linear_input(l, site, &in), "");
        const size_t at = size_t(std::find(std::begin(kSites), std::end(kSites), site) - kSites);
        EXPECT_TRUE(same_bits(in, inputs[at])) << l << " " << int(site);
      }
      ASSERT_EQ(
          model->forward_block_step(l, nn::BlockStep::kMlpResidual, x.data(), side.data(), b, t),
          "");
      EXPECT_TRUE(same_bits(x, whole)) << l;
      EXPECT_FALSE(same_bits(x, block_input)) << l;
    }
  }
}

TEST(ModelPtq, StoresEveryLinearWeightAndLeavesItsDecodedValuesInTheModel) {
  for (nn::Arch arch : {nn::Arch::kGpt2, nn::Arch::kLlama}) {
    auto model = tiny_model(arch);
    const std::vector<uint32_t> tokens = calibration(4, 32, model->config().vocab);
    ModelPtqOptions options;
    options.spec.format = ElementFormat::kE2M1;
    options.batch = 3;
    std::map<std::string, MxTensor> out;
    int64_t reported = 0;
    ASSERT_EQ(quantize_model(
                  *model, tokens, 4, 32, options,
                  [&](int64_t done, int64_t, std::string_view) { reported = done; }, &out),
              "");
    const int64_t per_layer = arch == nn::Arch::kLlama ? 7 : 6;
    EXPECT_EQ(int64_t(out.size()), per_layer * model->config().n_layers);
    EXPECT_EQ(reported, int64_t(out.size()));
    for (const nn::ParamView& v : model->params().views()) {
      auto it = out.find(v.name);
      if (it == out.end()) continue;
      const std::vector<float> in_model(model->params().data() + v.offset,
                                        model->params().data() + v.offset + v.size);
      EXPECT_TRUE(same_bits(dequantize_ref(it->second), in_model)) << v.name;
    }
  }
}

TEST(ModelPtq, BringsTheLogitsCloserToFp32ThanDirectCast) {
  auto reference = tiny_model(nn::Arch::kLlama);
  const int64_t b = 8, t = 32;
  const std::vector<uint32_t> tokens = calibration(b, t, reference->config().vocab);
  const std::vector<float> fp32 = logits_of(*reference, tokens, b, t);

  ModelPtqOptions options;
  options.spec.format = ElementFormat::kE2M1;
  auto diffused = tiny_model(nn::Arch::kLlama);
  std::map<std::string, MxTensor> out;
  ASSERT_EQ(quantize_model(*diffused, tokens, b, t, options, {}, &out), "");

  auto direct = tiny_model(nn::Arch::kLlama);
  for (const auto& [name, tensor] : out) {
    const nn::ParamView* v = direct->params().find(name);
    std::string error;
    const MxTensor cast =
        quantize_ref(std::span<const float>(direct->params().get(name), size_t(v->size)), v->shape,
                     options.spec, &error);
    ASSERT_EQ(error, "");
    const std::vector<float> values = dequantize_ref(cast);
    std::copy(values.begin(), values.end(), direct->params().get(name));
  }
  const double ptq_error = distance(logits_of(*diffused, tokens, b, t), fp32);
  const double direct_error = distance(logits_of(*direct, tokens, b, t), fp32);
  EXPECT_LT(ptq_error, 0.8 * direct_error) << ptq_error << " vs " << direct_error;
}

// The FP32-target correction solves the normal equations of fitting X W'ᵀ to X̃ Wᵀ:
// (W' - W) H = W ΔXᵀX with H = XᵀX (undampened here). With X̃ = X, or weight 0, W' is W bit
// for bit.
TEST(Fp32Targets, CorrectionSolvesTheNormalEquationsOfTheFp32Fit) {
  const int64_t rows = 96, k = 8, n = 3;
  std::vector<float> x(rows * k), xt(rows * k), w(n * k);
  uint64_t s = 7;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return float(int64_t(s >> 40) % 2001 - 1000) / 1000.0f;
  };
  for (int64_t i = 0; i < rows * k; ++i)
    x[size_t(i)] = next(), xt[size_t(i)] = x[size_t(i)] + 0.1f * next();
  for (float& v : w) v = next();
  std::vector<float> h(size_t(k * k), 0.0f);
  accumulate_hessian(h.data(), x.data(), rows, k, 1);
  CrossSum cross = cross_sum(k), none = cross_sum(k);
  add_cross_batch(&cross, xt.data(), x.data(), rows / 2, 1);  // two batches
  add_cross_batch(&cross, xt.data() + rows / 2 * k, x.data() + rows / 2 * k, rows / 2, 1);
  add_cross_batch(&none, x.data(), x.data(), rows, 1);
  Fp32Correction with_error, without_error;
  ASSERT_EQ(prepare_fp32_correction(h, std::move(cross), 0.0, 1, &with_error), "");
  ASSERT_EQ(prepare_fp32_correction(h, std::move(none), 0.0, 1, &without_error), "");
  std::vector<float> corrected = w, same = w, unweighted = w;
  correct_toward_fp32_outputs(corrected, n, with_error, 1.0, 1);
  correct_toward_fp32_outputs(same, n, without_error, 1.0, 1);
  correct_toward_fp32_outputs(unweighted, n, with_error, 0.0, 1);
  EXPECT_TRUE(same_bits(same, w));
  EXPECT_TRUE(same_bits(unweighted, w));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      double lhs = 0, rhs = 0;  // ((W' - W) H)[r][j] and (W ΔXᵀX)[r][j]
      for (int64_t i = 0; i < k; ++i) {
        lhs += (double(corrected[size_t(r * k + i)]) - w[size_t(r * k + i)]) * h[size_t(i * k + j)];
        double c = 0;
        for (int64_t t = 0; t < rows; ++t) {
          c += (double(xt[size_t(t * k + i)]) - x[size_t(t * k + i)]) * x[size_t(t * k + j)];
        }
        rhs += double(w[size_t(r * k + i)]) * c;
      }
      EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::fabs(rhs))) << r << " " << j;
    }
  }
}

// With the unquantized copy given but weight 0, PTQ stores what plain GPTQ stores; with weight
// 1 it stores other weights, which bring the logits closer to the FP32 model's than plain
// GPTQ's on the calibration tokens.
TEST(ModelPtq, Fp32TargetsAtWeightZeroAreGptqAndAtOneFitTheFp32Logits) {
  const int64_t b = 8, t = 32;
  auto reference = tiny_model(nn::Arch::kGpt2);
  const std::vector<uint32_t> tokens = calibration(b, t, reference->config().vocab);
  const std::vector<float> fp32 = logits_of(*reference, tokens, b, t);
  ModelPtqOptions options;
  options.spec.format = ElementFormat::kE2M1;
  std::map<std::string, MxTensor> plain, zero, whole;
  auto plain_model = tiny_model(nn::Arch::kGpt2);
  ASSERT_EQ(quantize_model(*plain_model, tokens, b, t, options, {}, &plain), "");
  auto fp32_copy = tiny_model(nn::Arch::kGpt2);
  options.fp32_model = fp32_copy.get();
  options.fp32_target_weight = 0.0;
  auto zero_model = tiny_model(nn::Arch::kGpt2);
  ASSERT_EQ(quantize_model(*zero_model, tokens, b, t, options, {}, &zero), "");
  options.fp32_target_weight = 1.0;
  auto whole_model = tiny_model(nn::Arch::kGpt2);
  ASSERT_EQ(quantize_model(*whole_model, tokens, b, t, options, {}, &whole), "");
  bool any_differs = false;
  for (const auto& [name, tensor] : plain) {
    EXPECT_EQ(zero[name].elements, tensor.elements) << name;
    EXPECT_EQ(zero[name].scales, tensor.scales) << name;
    any_differs |= whole[name].elements != tensor.elements;
  }
  EXPECT_TRUE(any_differs);
  const double plain_error = distance(logits_of(*plain_model, tokens, b, t), fp32);
  const double whole_error = distance(logits_of(*whole_model, tokens, b, t), fp32);
  EXPECT_LT(whole_error, plain_error) << whole_error << " vs " << plain_error;
  // A recipe that casts activations is refused: the cross term would need the cast inputs.
  options.recipe = *nn::recipe_preset("mxfp4");
  auto refused = tiny_model(nn::Arch::kGpt2);
  std::map<std::string, MxTensor> none;
  EXPECT_NE(quantize_model(*refused, tokens, b, t, options, {}, &none).find("FP32 targets"),
            std::string::npos);
}

TEST(ModelPtq, IsDeterministicForAnyThreadCount) {
  std::map<std::string, MxTensor> first;
  for (int threads : {1, 2}) {
    auto model = tiny_model(nn::Arch::kGpt2, threads);
    const std::vector<uint32_t> tokens = calibration(2, 32, model->config().vocab);
    ModelPtqOptions options;
    options.spec.format = ElementFormat::kE2M3;
    options.gptq.threads = threads;
    options.gptq.order = ColumnOrder::kActBlocks;
    std::map<std::string, MxTensor> out;
    ASSERT_EQ(quantize_model(*model, tokens, 2, 32, options, {}, &out), "");
    if (first.empty()) {
      first = out;
      continue;
    }
    for (const auto& [name, t] : out) {
      EXPECT_EQ(t.elements, first[name].elements) << name;
      EXPECT_EQ(t.scales, first[name].scales) << name;
    }
  }
}

// Under --recipe the first weights (q, k, v of block 0) are quantized against X^T X of their
// input as the recipe's act_fwd cast leaves it, not of the FP32 input.
TEST(ModelPtq, UnderARecipeUsesTheHessianOfTheCastActivations) {
  const int64_t b = 2, t = 32;
  ModelPtqOptions options;
  options.spec.format = ElementFormat::kE2M1;
  options.recipe = *nn::recipe_preset("mxfp4");
  auto model = tiny_model(nn::Arch::kGpt2);
  const nn::ModelConfig& c = model->config();
  const std::vector<uint32_t> tokens = calibration(b, t, c.vocab);
  std::map<std::string, MxTensor> cast_run, again, fp32_run;
  ASSERT_EQ(quantize_model(*model, tokens, b, t, options, {}, &cast_run), "");
  EXPECT_EQ(model->recipe().name, "fp32");  // the model's own recipe is restored

  // The Hessian by hand, from a fresh model: block 0's normed input, cast as the recipe does.
  auto fresh = tiny_model(nn::Arch::kGpt2);
  std::vector<float> x(size_t(b * t * c.dim)), in, scratch;
  ASSERT_EQ(fresh->embed(tokens.data(), b, t, x.data()), "");
  ASSERT_EQ(fresh->forward_block_step(0, nn::BlockStep::kNorm1, x.data(), nullptr, b, t), "");
  ASSERT_EQ(fresh->linear_input(0, LinearSite::kQ, &in), "");
  const uint64_t stream =
      nn::operand_stream(nn::stream_id(0, 0, int(LinearSite::kQ)), nn::LinearOperand::kActFwd);
  std::string error;
  const float* cast = nn::cpu::cast_operand(in.data(), b * t, c.dim, 1, options.recipe.act_fwd,
                                            "act_fwd", stream, scratch, &error, 0);
  ASSERT_EQ(error, "");
  std::vector<float> h(size_t(c.dim * c.dim), 0.0f), h_fp32 = h;
  accumulate_hessian(h.data(), cast, b * t, c.dim);
  accumulate_hessian(h_fp32.data(), in.data(), b * t, c.dim);
  EXPECT_NE(h, h_fp32);
  const nn::ParamView* wq = nullptr;
  for (const nn::ParamView& v : fresh->params().views()) {
    if (v.offset == fresh->linear_weight(0, LinearSite::kQ)) wq = &v;
  }
  ASSERT_NE(wq, nullptr);
  MxTensor want;
  ASSERT_EQ(
      gptq_quantize(std::span<const float>(fresh->params().data() + wq->offset, size_t(wq->size)),
                    wq->shape[0], wq->shape[1], h, options.spec, options.gptq, &want),
      "");
  EXPECT_EQ(cast_run[wq->name].elements, want.elements) << wq->name;
  EXPECT_EQ(cast_run[wq->name].scales, want.scales) << wq->name;

  // Deterministic, and not the FP32 run.
  auto second = tiny_model(nn::Arch::kGpt2);
  ASSERT_EQ(quantize_model(*second, tokens, b, t, options, {}, &again), "");
  options.recipe = *nn::recipe_preset("fp32");
  auto third = tiny_model(nn::Arch::kGpt2);
  ASSERT_EQ(quantize_model(*third, tokens, b, t, options, {}, &fp32_run), "");
  int differ = 0;
  for (const auto& [name, tensor] : cast_run) {
    EXPECT_EQ(tensor.elements, again[name].elements) << name;
    EXPECT_EQ(tensor.scales, again[name].scales) << name;
    differ += tensor.elements != fp32_run[name].elements;
  }
  EXPECT_EQ(differ, int(cast_run.size()));
}

TEST(ModelPtq, RefusesCalibrationThatDoesNotFit) {
  auto model = tiny_model(nn::Arch::kGpt2);
  const int64_t ctx = model->config().seq_len;
  const std::vector<uint32_t> tokens = calibration(1, ctx + 1, model->config().vocab);
  std::map<std::string, MxTensor> out;
  EXPECT_NE(quantize_model(*model, tokens, 1, ctx + 1, {}, {}, &out), "");
  EXPECT_NE(quantize_model(*model, tokens, 2, ctx, {}, {}, &out), "");
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace mx::ptq
