// The matmul entry point: FP32 products that do not depend on threads, and recipes that
// quantize each GEMM operand along that GEMM's reduction axis.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>

#include "mx/core/quantize_ref.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/nn/cpu/sgemm.h"

namespace mx::nn {
namespace {

std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(rows * cols);
  for (float& x : v) x = d(rng);
  return v;
}

// C = A B^T in double, the reference the float32 products are compared with.
std::vector<double> product_nt(const std::vector<float>& a, const std::vector<float>& b, int64_t m,
                               int64_t k, int64_t n) {
  std::vector<double> c(m * n);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += double(a[i * k + p]) * b[j * k + p];
      c[i * n + j] = s;
    }
  }
  return c;
}

std::vector<float> transpose(const std::vector<float>& a, int64_t rows, int64_t cols) {
  std::vector<float> t(a.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  }
  return t;
}

// A float32 sum of K products of N(0,1) values errs by at most about K * 2^-24 times the sum
// of |products| (about K); 1e-5 * K * K stays above that for every K used here (<= 100) while
// a wrong index or a dropped term (error ~1) would still fail.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, int64_t k) {
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5 * k * k) << i;
}

TEST(Sgemm, AllThreeLayoutsComputeTheSameProduct) {
  const int64_t m = 37, k = 70, n = 29;
  const auto a = random_matrix(m, k, 1), b = random_matrix(n, k, 2);
  const auto want = product_nt(a, b, m, k, n);
  std::vector<float> c(m * n);
  cpu::sgemm_nt(c.data(), a.data(), b.data(), m, k, n, false, 0);
  expect_close(c, want, k);
  cpu::sgemm_nn(c.data(), a.data(), transpose(b, n, k).data(), m, k, n, false, 0);
  expect_close(c, want, k);
  cpu::sgemm_tn(c.data(), transpose(a, m, k).data(), transpose(b, n, k).data(), m, k, n, false, 0);
  expect_close(c, want, k);
}

TEST(Sgemm, ResultsDoNotDependOnTheThreadCount) {
  const int64_t m = 64, k = 96, n = 48;
  const auto a = random_matrix(m, k, 3), b = random_matrix(n, k, 4);
  std::vector<float> one(m * n), many(m * n);
  cpu::sgemm_nt(one.data(), a.data(), b.data(), m, k, n, false, 1);
  cpu::sgemm_nt(many.data(), a.data(), b.data(), m, k, n, false, 7);
  EXPECT_EQ(one, many);
}

// The operand as the recipe should see it: quantized by the reference along `axis`.
std::vector<float> fake_quantized(const std::vector<float>& v, int64_t rows, int64_t cols, int axis,
                                  ElementFormat format) {
  QuantSpec spec;
  spec.format = format;
  spec.axis = axis;
  std::string error;
  const MxTensor t = quantize_ref(v, std::vector<int64_t>{rows, cols}, spec, &error);
  EXPECT_EQ(error, "");
  return dequantize_ref(t);
}

TEST(MatmulRecipe, ForwardQuantizesActivationsAndWeightsAlongInFeatures) {
  const int64_t m = 40, k = 64, n = 24;
  const auto x = random_matrix(m, k, 5), w = random_matrix(n, k, 6);
  Recipe r = *recipe_preset("mxfp4w-mxfp6a");
  std::vector<float> y(m * n), want(m * n);
  cpu::MatmulScratch scratch;
  ASSERT_EQ(cpu::matmul_forward(y.data(), x.data(), w.data(), nullptr, m, k, n, r, 0, scratch, 0),
            "");
  const auto xq = fake_quantized(x, m, k, 1, ElementFormat::kE3M2);
  const auto wq = fake_quantized(w, n, k, 1, ElementFormat::kE2M1);
  cpu::sgemm_nt(want.data(), xq.data(), wq.data(), m, k, n, false, 0);
  EXPECT_EQ(y, want);
}

TEST(MatmulRecipe, BackwardQuantizesEachGemmAlongItsOwnReductionAxis) {
  const int64_t m = 48, k = 40, n = 36;
  const auto x = random_matrix(m, k, 7), w = random_matrix(n, k, 8), dy = random_matrix(m, n, 9);
  const Recipe r = *recipe_preset("mxint8");
  std::vector<float> dx(m * k, 0.0f), dw(n * k, 0.0f);
  cpu::MatmulScratch scratch;
  ASSERT_EQ(cpu::matmul_backward(dx.data(), dw.data(), nullptr, dy.data(), x.data(), w.data(), m, k,
                                 n, r, 0, scratch, 0),
            "");
  // dx = dy W with dy blocked along out-features (axis 1) and W along out-features (axis 0).
  std::vector<float> want_dx(m * k, 0.0f);
  cpu::sgemm_nn(want_dx.data(), fake_quantized(dy, m, n, 1, ElementFormat::kInt8).data(),
                fake_quantized(w, n, k, 0, ElementFormat::kInt8).data(), m, n, k, false, 0);
  EXPECT_EQ(dx, want_dx);
  // dW = dy^T x with both blocked along tokens (axis 0).
  std::vector<float> want_dw(n * k, 0.0f);
  cpu::sgemm_tn(want_dw.data(), fake_quantized(dy, m, n, 0, ElementFormat::kInt8).data(),
                fake_quantized(x, m, k, 0, ElementFormat::kInt8).data(), n, m, k, false, 0);
  EXPECT_EQ(dw, want_dw);
  // Blocking dy the other way gives a different dW: the test above can tell axes apart.
  std::vector<float> wrong_dw(n * k, 0.0f);
  cpu::sgemm_tn(wrong_dw.data(), fake_quantized(dy, m, n, 1, ElementFormat::kInt8).data(),
                fake_quantized(x, m, k, 1, ElementFormat::kInt8).data(), n, m, k, false, 0);
  EXPECT_NE(dw, wrong_dw);
}

TEST(MatmulRecipe, Fp32RecipeLeavesOperandsUntouched) {
  const int64_t m = 8, k = 16, n = 4;
  const auto x = random_matrix(m, k, 10), w = random_matrix(n, k, 11);
  std::vector<float> y(m * n), want(m * n);
  cpu::MatmulScratch scratch;
  ASSERT_EQ(cpu::matmul_forward(y.data(), x.data(), w.data(), nullptr, m, k, n,
                                *recipe_preset("fp32"), 0, scratch, 0),
            "");
  cpu::sgemm_nt(want.data(), x.data(), w.data(), m, k, n, false, 0);
  EXPECT_EQ(y, want);
}

TEST(MatmulRecipe, StochasticRoundingStreamsDifferBetweenSteps) {
  const int64_t m = 32, k = 64, n = 16;
  const auto x = random_matrix(m, k, 12), w = random_matrix(n, k, 13), dy = random_matrix(m, n, 14);
  const Recipe r = *recipe_preset("mxfp4");  // gradients use stochastic rounding
  std::vector<float> dx1(m * k, 0.0f), dx2(m * k, 0.0f), dx1_again(m * k, 0.0f);
  cpu::MatmulScratch scratch;
  for (auto [dx, step] : {std::pair{&dx1, 1}, {&dx2, 2}, {&dx1_again, 1}}) {
    ASSERT_EQ(cpu::matmul_backward(dx->data(), nullptr, nullptr, dy.data(), x.data(), w.data(), m,
                                   k, n, r, stream_id(uint64_t(step), 0, 0), scratch, 0),
              "");
  }
  EXPECT_NE(dx1, dx2);
  EXPECT_EQ(dx1, dx1_again);
}

// A block far longer than the rows it covers is refused by the quantizer (mostly padding). The
// matmul reports that, naming the role, rather than multiply whatever its scratch held.
TEST(MatmulRecipe, ACastTheShapeCannotTakeIsReportedNotDropped) {
  const int64_t m = 512, k = 64, n = 8;
  const auto x = random_matrix(m, k, 15), w = random_matrix(n, k, 16);
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxfp8_e4m3", "block": 8192}})", &r), "");
  std::vector<float> y(m * n);
  cpu::MatmulScratch scratch;
  EXPECT_EQ(cpu::matmul_forward(y.data(), x.data(), w.data(), nullptr, m, k, n, r, 0, scratch, 0),
            "recipe role 'act_fwd' on a [512, 64] operand: blocks of 8192 elements are mostly "
            "padding for this array; use a smaller block or tile");
}

TEST(Recipe, JsonRecipesParseAndBadOnesAreRefused) {
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"name": "w4", "default": "bf16",
      "weight_fwd": {"format": "mxfp4_e2m1", "scale": "even"}})",
                              &r),
            "");
  EXPECT_EQ(r.name, "w4");
  EXPECT_EQ(r.act_fwd.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(r.weight_fwd.spec.format, ElementFormat::kE2M1);
  EXPECT_EQ(r.weight_fwd.spec.scale_rule, ScaleRule::kEven);
  EXPECT_NE(parse_recipe_json("{", &r), "");
  EXPECT_NE(parse_recipe_json(R"({"weight_fwd": "mxfp5"})", &r).find("mxfp5"), std::string::npos);
  EXPECT_NE(parse_recipe_json(R"({"act_fwd": {"block": 0}})", &r).find("block"), std::string::npos);
  EXPECT_NE(parse_recipe_json(R"({"bogus": 1})", &r).find("bogus"), std::string::npos);
  // Read as 64 bits and range-checked: a 32-bit read would wrap 2^32 + 32 to 32.
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"block": 4294967328}})", &r),
            "recipe role 'act_fwd': block 4294967328 is not between 1 and 1048576");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"block": -32}})", &r),
            "recipe role 'act_fwd': block -32 is not between 1 and 1048576");
  // A known field of the wrong type says what it must be, rather than that it is unknown.
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"block": 99999999999999999999}})", &r),
            "recipe role 'act_fwd': 'block' must be an integer from 1 to 1048576");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"format": 5}})", &r),
            "recipe role 'act_fwd': 'format' must be a format name");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxint4", "asym": "yes"}})", &r),
            "recipe role 'act_fwd': 'asym' must be true or false");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"seed": -1}})", &r),
            "recipe role 'act_fwd': 'seed' must be an integer from 0 to 2^64 - 1");
  EXPECT_EQ(parse_recipe_json(R"({"name": 4})", &r), "recipe: 'name' must be a string");
  // A message quotes the recipe's own text, whose escapes may hold control characters: it
  // stays one line.
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"round": "nearest-ev\n"}})", &r),
            "recipe role 'act_fwd': unknown rounding 'nearest-ev\\x0a'");
  EXPECT_EQ(parse_recipe_json(R"({"act\tfwd": "bf16"})", &r),
            "recipe: unexpected field 'act\\x09fwd'");
  // A repeated key, whose first value the parsed document would drop, at any depth.
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": "bf16", "act_fwd": "mxfp8_e4m3"})", &r),
            "recipe: key 'act_fwd' appears twice in one object");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxfp4_e2m1", "format": "mxint8"}})", &r),
            "recipe: key 'format' appears twice in one object");
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxint8"}, "weight_fwd": {"format":
      "mxint8"}})",
                              &r),
            "");
}

// Yang et al.'s 4-bit recipe: E2M1 forward and weight-gradient operands, E3M0 gradients rounded
// stochastically under EVEN scales (under FLOOR, E3M0 clips each block's largest gradients).
TEST(Recipe, Mxfp4PresetCastsGradientsToE3m0UnderEvenScales) {
  const Recipe r = *recipe_preset("mxfp4");
  for (const OperandCast* c : {&r.weight_fwd, &r.act_fwd, &r.weight_dx, &r.act_dw}) {
    EXPECT_EQ(c->spec.format, ElementFormat::kE2M1);
    EXPECT_EQ(c->spec.scale_rule, ScaleRule::kFloor);
    EXPECT_EQ(c->spec.rounding, Rounding::kNearestEven);
  }
  for (const OperandCast* c : {&r.grad_out_dx, &r.grad_out_dw}) {
    EXPECT_EQ(c->spec.format, ElementFormat::kE3M0);
    EXPECT_EQ(c->spec.scale_rule, ScaleRule::kEven);
    EXPECT_EQ(c->spec.rounding, Rounding::kStochastic);
  }
}

TEST(Recipe, Bf16ClassifierTurnsOnlyTheClassifiersMxCastsIntoBfloat16) {
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"name": "c", "default": "mxfp6", "act_fwd": "fp32",
      "grad_out_dw": "bf16", "bf16_classifier": true})",
                              &r),
            "");
  EXPECT_TRUE(r.bf16_classifier);
  const Recipe c = classifier_recipe(r);
  EXPECT_EQ(c.weight_fwd.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(c.grad_out_dx.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(c.act_fwd.kind, OperandCast::Kind::kNone);
  EXPECT_EQ(c.grad_out_dw.kind, OperandCast::Kind::kBF16);
  Recipe back;
  ASSERT_EQ(parse_recipe_json(recipe_to_json(r), &back), "");
  EXPECT_TRUE(back.bf16_classifier);
  EXPECT_NE(describe(r).find("classifier=bf16"), std::string::npos);
  // Off (the presets): the classifier casts as every other product.
  const Recipe mxfp6 = *recipe_preset("mxfp6");
  EXPECT_FALSE(mxfp6.bf16_classifier);
  EXPECT_EQ(classifier_recipe(mxfp6).weight_fwd.kind, OperandCast::Kind::kMx);
  EXPECT_NE(parse_recipe_json(R"({"bf16_classifier": 1})", &r).find("bf16_classifier"),
            std::string::npos);
}

TEST(Recipe, Bf16AttentionTurnsOnlyAttentionsMxCastsIntoBfloat16) {
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"name": "a", "default": "mxfp4_e2m1", "grad_out_dw": "bf16",
      "weight_dx": "fp32", "bf16_attention": true})",
                              &r),
            "");
  EXPECT_TRUE(r.bf16_attention);
  const Recipe a = attention_recipe(r);
  EXPECT_EQ(a.act_fwd.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(a.act_dw.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(a.grad_out_dx.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(a.grad_out_dw.kind, OperandCast::Kind::kBF16);
  EXPECT_EQ(a.weight_dx.kind, OperandCast::Kind::kNone);
  // The linear layers and the classifier keep their MX casts.
  EXPECT_EQ(classifier_recipe(r).act_fwd.kind, OperandCast::Kind::kMx);
  Recipe back;
  ASSERT_EQ(parse_recipe_json(recipe_to_json(r), &back), "");
  EXPECT_TRUE(back.bf16_attention);
  EXPECT_NE(describe(r).find("attention=bf16"), std::string::npos);
  // Off (the presets follow the paper): attention casts as every other product.
  const Recipe mxfp4 = *recipe_preset("mxfp4");
  EXPECT_FALSE(mxfp4.bf16_attention);
  EXPECT_EQ(attention_recipe(mxfp4).act_fwd.kind, OperandCast::Kind::kMx);
  EXPECT_NE(parse_recipe_json(R"({"bf16_attention": "yes"})", &r)
                .find("'bf16_attention' must be true or false"),
            std::string::npos);
}

// The study's recipe files stay readable, and each is named as its file is.
TEST(Recipe, EveryRecipeFileOfTheStudiesParsesUnderItsFileName) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(MX_SOURCE_DIR "/recipes")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    Recipe r;
    ASSERT_EQ(recipe_from_spec(entry.path().string(), &r), "") << entry.path();
    EXPECT_EQ(r.name, entry.path().stem().string());
  }
  EXPECT_GE(files, 10);
}

// A recipe given on the command line as JSON text is the recipe that file would hold; a
// malformed one names its fault rather than being looked for as a file.
TEST(Recipe, JsonTextIsARecipeAsAFileWouldBe) {
  Recipe from_text;
  ASSERT_EQ(recipe_from_spec("  {\"name\": \"w4\", \"weight_fwd\": \"mxfp4_e2m1\"}", &from_text),
            "");
  Recipe parsed;
  ASSERT_EQ(parse_recipe_json("{\"name\": \"w4\", \"weight_fwd\": \"mxfp4_e2m1\"}", &parsed), "");
  EXPECT_EQ(recipe_to_json(from_text), recipe_to_json(parsed));
  EXPECT_EQ(from_text.name, "w4");
  EXPECT_EQ(from_text.weight_fwd.kind, OperandCast::Kind::kMx);
  Recipe bad;
  const std::string e = recipe_from_spec("{\"weight_fwd\": \"mxfp9\"}", &bad);
  EXPECT_EQ(e, "recipe role 'weight_fwd': unknown cast 'mxfp9'");
  EXPECT_EQ(e.find("not a preset"), std::string::npos) << e;
  EXPECT_TRUE(is_recipe_json_text("\n {}"));
  EXPECT_FALSE(is_recipe_json_text("recipes/w4.json"));
}

// Quantization-aware training keeps the forward casts; the backward multiplies in float32 where
// the activations are float32 and in bfloat16 where they are bfloat16 (a GPU's MX runs), so
// that attention's backward stays on the tensor-core kernels. A recipe it does not change
// keeps its name (and with it, on a GPU, its float32 activations).
TEST(Recipe, ForwardCastsForTrainingKeepTheForwardAndMatchTheActivationsBackward) {
  const Recipe mxfp4 = *recipe_preset("mxfp4");
  for (const bool bf16 : {false, true}) {
    const Recipe r = forward_casts_for_training(mxfp4, bf16);
    EXPECT_EQ(r.name, "mxfp4-forward");
    EXPECT_EQ(r.act_fwd.kind, OperandCast::Kind::kMx);
    EXPECT_EQ(r.weight_fwd.kind, OperandCast::Kind::kMx);
    EXPECT_EQ(r.act_fwd.spec.format, mxfp4.act_fwd.spec.format);
    const OperandCast::Kind backward = bf16 ? OperandCast::Kind::kBF16 : OperandCast::Kind::kNone;
    for (const OperandCast* c : {&r.grad_out_dx, &r.weight_dx, &r.grad_out_dw, &r.act_dw}) {
      EXPECT_EQ(c->kind, backward);
    }
  }
  EXPECT_EQ(forward_casts_for_training(*recipe_preset("fp32"), false).name, "fp32");
  EXPECT_EQ(forward_casts_for_training(*recipe_preset("bf16"), true).name, "bf16");
  EXPECT_EQ(forward_casts_for_training(*recipe_preset("bf16"), false).name, "bf16-forward");
}

TEST(Recipe, Tf32PresetCastsNothing) {
  const Recipe r = *recipe_preset("tf32");
  EXPECT_EQ(r.name, "tf32");
  for (const OperandCast* c :
       {&r.weight_fwd, &r.act_fwd, &r.weight_dx, &r.act_dw, &r.grad_out_dx, &r.grad_out_dw}) {
    EXPECT_EQ(c->kind, OperandCast::Kind::kNone);
  }
}

}  // namespace
}  // namespace mx::nn
