// nn::CastProbe and train::measure_cast_errors: a backend that measures a recipe's casts without
// changing what the model computes, and the report of those errors per product and role.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "mx/core/half.h"
#include "mx/nn/cast_probe.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"
#include "mx/train/cast_errors.h"
#include "tests/next_tokens.h"

namespace mx::nn {
namespace {

struct Tokens : test::NextTokens {
  explicit Tokens(int64_t vocab) : NextTokens(vocab, 2, 16) {}
};

ModelConfig two_layer_gpt2() {
  ModelConfig c = *model_preset("tiny", Arch::kGpt2);
  c.n_layers = 2;
  return c;
}

// A model on a probe over a CPU backend; *probe points at the backend the model owns.
std::unique_ptr<Model> probed_model(const ModelConfig& config, CastProbe** probe) {
  auto p = std::make_unique<CastProbe>(std::make_unique<CpuBackend>(), 0);
  *probe = p.get();
  auto model = std::make_unique<Model>(config, std::move(p));
  model->params().init(7);
  return model;
}

float train_pass(Model& model, const Tokens& d) {
  float loss = 0;
  PassOptions training;
  training.training = true;
  EXPECT_EQ(model.forward(d.tokens.data(), d.targets.data(), d.b, d.t, &loss, training), "");
  EXPECT_EQ(model.backward(), "");
  return loss;
}

TEST(CastProbe, LeavesTheLossAndEveryGradientBitForBitAsTheBackendItWraps) {
  const ModelConfig config = two_layer_gpt2();
  const Tokens d(config.vocab);
  Model plain(config);
  plain.params().init(7);
  CastProbe* probe = nullptr;
  std::unique_ptr<Model> probed = probed_model(config, &probe);
  for (Model* m : {&plain, probed.get()}) m->set_recipe(*recipe_preset("mxfp6"));
  EXPECT_EQ(train_pass(plain, d), train_pass(*probed, d));
  const Params& a = plain.params();
  const Params& b = probed->params();
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) ASSERT_EQ(a.grad()[i], b.grad()[i]) << i;
  EXPECT_FALSE(probe->errors().empty());
}

TEST(CastProbe, RecordsSixRolesOfEveryLinearProductAndTheClassifierInModelOrder) {
  const ModelConfig config = two_layer_gpt2();
  CastProbe* probe = nullptr;
  std::unique_ptr<Model> model = probed_model(config, &probe);
  model->set_recipe(*recipe_preset("mxfp6"));
  train_pass(*model, Tokens(config.vocab));
  const std::vector<CastError> rows = probe->errors();
  // GPT-2 blocks: q, k, v, attention output, fc, proj.
  ASSERT_EQ(rows.size(), size_t((6 * config.n_layers + 1) * 6));
  EXPECT_EQ(rows[0].layer, 0);
  EXPECT_EQ(rows[0].site, 0);
  EXPECT_EQ(rows[0].role, LinearOperand::kActFwd);
  EXPECT_EQ(rows[1].role, LinearOperand::kWeightFwd);
  for (const CastError& e : rows) {
    EXPECT_GT(e.count, 0);
    EXPECT_GT(e.relative_rmse(), 0.01) << e.layer << " " << e.site;  // 6 bits lose about 5%
    EXPECT_LT(e.relative_rmse(), 0.2) << e.layer << " " << e.site;
  }
}

// The probe shows which casts a recipe makes: under bf16_classifier the classifier's operands
// lose only bfloat16's rounding (under 0.4%), the blocks' products MXFP6's (about 5%).
TEST(CastProbe, ShowsTheClassifierInBfloat16UnderABf16ClassifierRecipe) {
  const ModelConfig config = two_layer_gpt2();
  CastProbe* probe = nullptr;
  std::unique_ptr<Model> model = probed_model(config, &probe);
  Recipe recipe = *recipe_preset("mxfp6");
  recipe.bf16_classifier = true;
  model->set_recipe(recipe);
  train_pass(*model, Tokens(config.vocab));
  int classifier_rows = 0;
  for (const CastError& e : probe->errors()) {
    if (e.layer == config.n_layers) {
      ++classifier_rows;
      EXPECT_LT(e.relative_rmse(), 0.004) << linear_operand_name(e.role);
    } else {
      EXPECT_GT(e.relative_rmse(), 0.01);
    }
  }
  EXPECT_EQ(classifier_rows, 6);
}

TEST(CastProbe, RecordsNothingForCastsThatAreNone) {
  CastProbe* probe = nullptr;
  std::unique_ptr<Model> model = probed_model(two_layer_gpt2(), &probe);
  model->set_recipe(*recipe_preset("fp32"));
  train_pass(*model, Tokens(model->config().vocab));
  EXPECT_TRUE(probe->errors().empty());
}

// y = x W^T with only x cast: one call, its error against an independent rounding of x.
CastError error_of_one_forward(const std::vector<float>& x, int64_t m, int64_t k,
                               const OperandCast& act_cast) {
  CastProbe probe(std::make_unique<CpuBackend>(), 0);
  std::vector<float> xs = x, w(static_cast<size_t>(k), 1.0f), y(static_cast<size_t>(m));
  Recipe recipe = *recipe_preset("fp32");
  recipe.act_fwd = act_cast;
  probe.matmul_forward(probe.wrap(y.data(), BufType::kF32, m),
                       probe.wrap(xs.data(), BufType::kF32, m * k),
                       probe.wrap(w.data(), BufType::kF32, k), {}, m, k, 1, recipe, SrKey{0, 3, 5});
  EXPECT_EQ(probe.probe_error(), "");
  const std::vector<CastError> rows = probe.errors();
  EXPECT_EQ(rows.size(), 1u);
  return rows.empty() ? CastError{} : rows[0];
}

TEST(CastProbe, ErrorOfABfloat16CastIsEachValuesRoundingToBfloat16) {
  std::vector<float> x;
  for (int i = 0; i < 64; ++i) x.push_back(std::sin(float(i) * 0.37f) * 3.0f + 0.001f * float(i));
  const CastError e = error_of_one_forward(x, 2, 32, OperandCast::bf16());
  double sum_sq = 0, err_sq = 0;
  for (float v : x) {
    sum_sq += double(v) * v;
    err_sq += std::pow(double(round_to_bf16(v)) - v, 2);
  }
  EXPECT_EQ(e.layer, 3);
  EXPECT_EQ(e.site, 5);
  EXPECT_EQ(e.count, 64);
  EXPECT_DOUBLE_EQ(e.sum_sq, sum_sq);
  EXPECT_DOUBLE_EQ(e.err_sq, err_sq);
  EXPECT_GT(err_sq, 0);
}

TEST(CastProbe, CountsTheNonzeroValuesAnMxCastFlushesToZero) {
  // One block of 32: E3M2 under the default (floor) scale maps 1.0 to 16, so its smallest step
  // is 2^-8 of the block's maximum: 1e-6 becomes 0, and the powers of two stay exact.
  std::vector<float> x(32, 0.0f);
  x[0] = 1.0f, x[1] = 0.5f, x[2] = 0.25f, x[3] = -0.0625f, x[4] = 1e-6f;
  OperandCast e3m2 = recipe_preset("mxfp6")->act_fwd;
  const CastError e = error_of_one_forward(x, 1, 32, e3m2);
  EXPECT_EQ(e.count, 32);
  EXPECT_EQ(e.nonzero, 5);
  EXPECT_EQ(e.flushed, 1);
  EXPECT_DOUBLE_EQ(e.err_sq, double(1e-6f) * double(1e-6f));
  EXPECT_DOUBLE_EQ(e.flushed_fraction(), 0.2);
}

TEST(CastErrors, SumsTheRowsByRoleAndByProductAndRestoresTheModel) {
  const ModelConfig config = two_layer_gpt2();
  CastProbe* probe = nullptr;
  std::unique_ptr<Model> model = probed_model(config, &probe);
  std::vector<uint32_t> tokens;
  for (int i = 0; i < 200; ++i) tokens.push_back(uint32_t((i * 53 + 5) % config.vocab));
  train::CastErrorReport report;
  ASSERT_EQ(train::measure_cast_errors(*model, *probe, *recipe_preset("mxfp4"),
                                       data::TokenView::of(tokens), {2, 16, 3, 1}, &report),
            "");
  EXPECT_EQ(model->recipe().name, "fp32");
  for (int64_t i = 0; i < model->params().size(); ++i) ASSERT_EQ(model->params().grad()[i], 0);
  EXPECT_EQ(report.tokens, 3 * 2 * 16);
  EXPECT_TRUE(std::isfinite(report.loss));
  ASSERT_EQ(report.by_role.size(), 6u);
  // Six products per block summed over the blocks, and the classifier: 7 x 6 rows.
  ASSERT_EQ(report.by_product.size(), 7u * 6u);
  EXPECT_EQ(train::product_name(report.by_product.back().layer, report.by_product.back().site,
                                int(config.n_layers)),
            "classifier");
  for (const CastError& total : report.by_role) {
    double err = 0, sum = 0;
    int64_t count = 0;
    for (const CastError& e : report.rows) {
      if (e.role != total.role) continue;
      err += e.err_sq, sum += e.sum_sq, count += e.count;
    }
    EXPECT_EQ(total.count, count);
    EXPECT_DOUBLE_EQ(total.err_sq, err);
    EXPECT_DOUBLE_EQ(total.sum_sq, sum);
  }
}

TEST(CastErrors, NamesEachProductSiteAndTheClassifier) {
  EXPECT_EQ(train::product_name(0, 0, 12), "q");
  EXPECT_EQ(train::product_name(3, 4, 12), "attn_out");
  EXPECT_EQ(train::product_name(11, 7, 12), "proj");
  EXPECT_EQ(train::product_name(12, 0, 12), "classifier");
}

}  // namespace
}  // namespace mx::nn
