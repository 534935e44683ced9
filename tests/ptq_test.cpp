// Post-training quantization of one linear layer by error diffusion (mx/ptq): the inverse
// Hessian factor, the column orders, and the quantizer against direct cast.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "mx/core/quantize_ref.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"
#include "mx/ptq/cholesky.h"
#include "mx/ptq/column_order.h"
#include "mx/ptq/gptq.h"
#include "mx/ptq/hessian.h"
#include "mx/ptq/refine.h"

namespace mx::ptq {
namespace {

// A linear layer's calibration problem: inputs X [m, k] whose features are correlated (X = Z A,
// Z Gaussian, A a random mixing) and of unequal energy, and a Gaussian weight W [n, k].
struct Layer {
  int64_t m = 256, k = 96, n = 24;
  std::vector<float> x, w, h;
  explicit Layer(uint32_t seed, int64_t k_in = 96) : k(k_in) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    const int64_t r = k / 2;
    std::vector<float> z(size_t(m * r)), a(size_t(r * k));
    for (float& v : z) v = normal(rng);
    for (float& v : a) v = normal(rng);
    x.assign(size_t(m * k), 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t c = 0; c < k; ++c) {
        float s = 0;
        for (int64_t p = 0; p < r; ++p) s += z[size_t(i * r + p)] * a[size_t(p * k + c)];
        x[size_t(i * k + c)] = s * (1.0f + float(c % 7)) + 0.3f * normal(rng);
      }
    }
    w.resize(size_t(n * k));
    for (float& v : w) v = 0.05f * normal(rng);
    h.assign(size_t(k * k), 0.0f);
    accumulate_hessian(h.data(), x.data(), m, k, 1);
  }

  // ||X W^T - X V^T||_F for the decoded weight V, in double.
  double output_error(const std::vector<float>& v) const {
    double sum = 0;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t o = 0; o < n; ++o) {
        double d = 0;
        for (int64_t c = 0; c < k; ++c) {
          d += double(x[size_t(i * k + c)]) * (double(w[size_t(o * k + c)]) - v[size_t(o * k + c)]);
        }
        sum += d * d;
      }
    }
    return std::sqrt(sum);
  }
};

QuantSpec spec_of(ElementFormat format) {
  QuantSpec s;
  s.format = format;
  return s;
}

std::vector<float> direct_cast(const Layer& l, const QuantSpec& spec) {
  std::string error;
  const int64_t shape[2] = {l.n, l.k};
  const MxTensor t = quantize_ref(l.w, shape, spec, &error);
  EXPECT_EQ(error, "");
  return dequantize_ref(t);
}

struct Result {
  MxTensor tensor;
  std::vector<float> values;
};

Result diffuse(const Layer& l, const QuantSpec& spec, const GptqOptions& options,
               std::span<const float> h) {
  Result r;
  EXPECT_EQ(gptq_quantize(l.w, l.n, l.k, h, spec, options, &r.tensor, &r.values), "");
  return r;
}

Result diffuse(const Layer& l, const QuantSpec& spec, const GptqOptions& options = {}) {
  return diffuse(l, spec, options, l.h);
}

std::vector<float> identity(int64_t k) {
  std::vector<float> h(size_t(k * k), 0.0f);
  for (int64_t i = 0; i < k; ++i) h[size_t(i * k + i)] = 1.0f;
  return h;
}

bool same_tensor(const MxTensor& a, const MxTensor& b) {
  return a.shape == b.shape && a.spec == b.spec && a.elements == b.elements &&
         a.scales == b.scales && a.offsets == b.offsets;
}

TEST(InverseHessianFactor, IsUpperTriangularWithUtUEqualToTheInverse) {
  const Layer l(1, 40);
  const int64_t k = l.k;
  const std::vector<int64_t> order =
      column_order(std::vector<float>(size_t(k)), 1, ColumnOrder::kNatural);
  std::vector<double> h = damped_hessian(l.h, k, order, 0.01);
  const std::vector<double> original = h;
  ASSERT_EQ(inverse_hessian_factor(&h, k), "");
  double scale = 0;
  for (int64_t i = 0; i < k; ++i) scale = std::max(scale, original[size_t(i * k + i)]);
  for (int64_t i = 0; i < k; ++i) {
    EXPECT_GT(h[size_t(i * k + i)], 0.0);
    for (int64_t j = 0; j < i; ++j) EXPECT_EQ(h[size_t(i * k + j)], 0.0);
  }
  // (U^T U) H = I. The damped H's condition number is below 1e5, so double leaves far more
  // than the 1e-7 asked for.
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        double inv = 0;  // (U^T U)[i][p]
        for (int64_t q = 0; q <= std::min(i, p); ++q) {
          inv += h[size_t(q * k + i)] * h[size_t(q * k + p)];
        }
        s += inv * original[size_t(p * k + j)];
      }
      EXPECT_NEAR(s, i == j ? 1.0 : 0.0, 1e-7) << i << ", " << j;
    }
  }
}

TEST(InverseHessianFactor, DoesNotDependOnTheThreadCount) {
  // Large enough that its loops are shared between threads.
  const Layer l(2, 400);
  const int64_t k = l.k;
  const std::vector<int64_t> order =
      column_order(std::vector<float>(size_t(k)), 1, ColumnOrder::kNatural);
  std::vector<double> one = damped_hessian(l.h, k, order, 0.01), three = one;
  ASSERT_EQ(inverse_hessian_factor(&one, k, 1), "");
  ASSERT_EQ(inverse_hessian_factor(&three, k, 3), "");
  EXPECT_EQ(one, three);
}

// The factor as cholesky.h defines it, one element at a time: V from the last column back, each
// entry's sum one chain of fused multiply-adds over the columns after it, the last first; then
// U = V^-1, each U[i][j] one chain over V[i][m] U[m][j] from m = j down.
std::vector<double> unblocked_factor(const std::vector<double>& h, int64_t k) {
  std::vector<double> v(size_t(k * k), 0.0), u(size_t(k * k), 0.0);
  for (int64_t j = k - 1; j >= 0; --j) {
    double pivot = h[size_t(j * k + j)];
    for (int64_t m = k - 1; m > j; --m) {
      pivot = std::fma(-v[size_t(j * k + m)], v[size_t(j * k + m)], pivot);
    }
    v[size_t(j * k + j)] = std::sqrt(pivot);
    for (int64_t i = j - 1; i >= 0; --i) {
      double t = h[size_t(i * k + j)];
      for (int64_t m = k - 1; m > j; --m) {
        t = std::fma(-v[size_t(i * k + m)], v[size_t(j * k + m)], t);
      }
      v[size_t(i * k + j)] = t / v[size_t(j * k + j)];
    }
  }
  for (int64_t j = k - 1; j >= 0; --j) {
    for (int64_t i = j; i >= 0; --i) {
      double s = 0;
      for (int64_t m = j; m > i; --m) s = std::fma(v[size_t(i * k + m)], u[size_t(m * k + j)], s);
      u[size_t(i * k + j)] = ((i == j ? 1.0 : 0.0) - s) / v[size_t(i * k + i)];
    }
  }
  return u;
}

TEST(InverseHessianFactor, BlockingAndThreadsLeaveTheUnblockedAlgorithmsBits) {
  // Past panel edges of 64 (k = 130) and large enough to share between threads (k = 300).
  for (const int64_t k : {int64_t{130}, int64_t{300}}) {
    const Layer l(3, k);
    const std::vector<int64_t> order =
        column_order(std::vector<float>(size_t(k)), 1, ColumnOrder::kNatural);
    const std::vector<double> h = damped_hessian(l.h, k, order, 0.01);
    const std::vector<double> want = unblocked_factor(h, k);
    for (const int threads : {1, 3}) {
      std::vector<double> got = h;
      ASSERT_EQ(inverse_hessian_factor(&got, k, threads), "");
      EXPECT_EQ(got, want) << "k " << k << ", threads " << threads;
    }
  }
}

TEST(InverseHessianFactor, RefusesAMatrixThatIsNotPositiveDefinite) {
  std::vector<double> h = {1, 2, 2, 1};  // eigenvalues 3 and -1
  const std::string e = inverse_hessian_factor(&h, 2);
  EXPECT_NE(e.find("not positive definite"), std::string::npos) << e;
}

TEST(DampedHessian, AddsTheFractionOfTheMeanDiagonalAndUnitsForDeadInputs) {
  const std::vector<float> h = {4, 1, 0, 1, 2, 0, 0, 0, 0};  // input 2 is dead
  const std::vector<int64_t> order = {2, 0, 1};
  const std::vector<double> d = damped_hessian(h, 3, order, 0.5);
  const double lambda = 0.5 * (4 + 2 + 0) / 3;
  const std::vector<double> expected = {1, 0, 0, 0, 4 + lambda, 1, 0, 1, 2 + lambda};
  EXPECT_EQ(d, expected);
}

TEST(ColumnOrder, EqualDiagonalsGiveTheNaturalOrderUnderEveryRule) {
  const std::vector<float> diag(70, 3.0f);
  for (ColumnOrder o : {ColumnOrder::kNatural, ColumnOrder::kActBlocks, ColumnOrder::kActColumns}) {
    const std::vector<int64_t> order = column_order(diag, 32, o);
    for (int64_t i = 0; i < 70; ++i) EXPECT_EQ(order[size_t(i)], i) << column_order_name(o);
  }
}

TEST(ColumnOrder, ActivationOrderByBlocksKeepsEachBlockTogether) {
  // Three groups of 4 (the last holds 2): sums 10, 40, 3.
  const std::vector<float> diag = {1, 2, 3, 4, 10, 20, 5, 5, 1, 2};
  EXPECT_EQ(column_order(diag, 4, ColumnOrder::kActBlocks),
            (std::vector<int64_t>{5, 4, 6, 7, 3, 2, 1, 0, 9, 8}));
  EXPECT_EQ(column_order(diag, 4, ColumnOrder::kActColumns),
            (std::vector<int64_t>{5, 4, 6, 7, 3, 2, 1, 9, 0, 8}));
}

TEST(ErrorDiffusion, LowersTheOutputErrorBelowDirectCastForEveryFormat) {
  const Layer l(7);
  for (const FormatTraits& f : all_formats()) {
    const QuantSpec spec = spec_of(f.format);
    const double direct = l.output_error(direct_cast(l, spec));
    for (ColumnOrder o :
         {ColumnOrder::kNatural, ColumnOrder::kActBlocks, ColumnOrder::kActColumns}) {
      for (ScaleChoice choice :
           {ScaleChoice::kRule, ScaleChoice::kNeighbors, ScaleChoice::kLookahead}) {
        GptqOptions options;
        options.order = o;
        options.scale = choice;
        const double diffused = l.output_error(diffuse(l, spec, options).values);
        EXPECT_LT(diffused, 0.75 * direct)
            << f.mx_name << " " << column_order_name(o) << " scale choice " << int(choice);
      }
    }
  }
}

TEST(ErrorDiffusion, LowersTheOutputErrorForBlocksAlongOutputsAndForTiles) {
  const Layer l(8);
  QuantSpec along_outputs = spec_of(ElementFormat::kE2M1);
  along_outputs.axis = 0;
  along_outputs.block_size = 8;
  QuantSpec tiled = spec_of(ElementFormat::kE2M1);
  tiled.tile_rows = tiled.tile_cols = 8;
  for (const QuantSpec& spec : {along_outputs, tiled}) {
    const double direct = l.output_error(direct_cast(l, spec));
    EXPECT_LT(l.output_error(diffuse(l, spec).values), 0.9 * direct) << describe(spec);
  }
}

// Every format, and a spec of each other kind: scale rules, roundings, asymmetric blocks of
// 16, blocks along the outputs, tiles.
std::vector<QuantSpec> specs_of_every_kind() {
  std::vector<QuantSpec> specs;
  for (const FormatTraits& f : all_formats()) specs.push_back(spec_of(f.format));
  QuantSpec s = spec_of(ElementFormat::kE2M3);
  for (ScaleRule r : {ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil}) {
    s.scale_rule = r;
    specs.push_back(s);
  }
  s = spec_of(ElementFormat::kE2M1);
  s.rounding = Rounding::kStochastic;
  s.seed = 99;
  specs.push_back(s);
  s.rounding = Rounding::kNearestAway;
  specs.push_back(s);
  s = spec_of(ElementFormat::kInt4);
  s.asymmetric = true;
  s.flush_subnormals = true;
  s.block_size = 16;
  specs.push_back(s);
  s = spec_of(ElementFormat::kE4M3);
  s.axis = 0;
  specs.push_back(s);
  s = spec_of(ElementFormat::kE3M2);
  s.tile_rows = 4, s.tile_cols = 16;
  specs.push_back(s);
  return specs;
}

// Under H = I no column's error reaches another (U is diagonal), so every block sees its
// original values: the result is quantize_ref's, bit for bit, whatever the spec.
TEST(ErrorDiffusion, WithTheIdentityHessianIsDirectCastBitForBit) {
  const Layer l(3, 80);  // 80 inputs: the last block along them is padded
  const std::vector<float> h = identity(l.k);
  const int64_t shape[2] = {l.n, l.k};
  for (const QuantSpec& spec : specs_of_every_kind()) {
    std::string error;
    const MxTensor direct = quantize_ref(l.w, shape, spec, &error);
    ASSERT_EQ(error, "");
    for (ColumnOrder o :
         {ColumnOrder::kNatural, ColumnOrder::kActBlocks, ColumnOrder::kActColumns}) {
      GptqOptions options;
      options.order = o;
      EXPECT_TRUE(same_tensor(diffuse(l, spec, options, h).tensor, direct))
          << describe(spec) << " " << column_order_name(o);
    }
  }
}

// Under H = I the search weighs every element alike and no error moves: each block takes the
// rule's scale or a neighbor with less squared error, never more, and some blocks move.
TEST(ErrorDiffusion, ScaleSearchLeavesNoBlockMoreErrorThanTheRule) {
  const Layer l(4, 96);
  const std::vector<float> h = identity(l.k);
  for (const ElementFormat format : {ElementFormat::kE2M1, ElementFormat::kInt4}) {
    const QuantSpec spec = spec_of(format);
    GptqOptions options;
    options.scale = ScaleChoice::kNeighbors;
    const Result searched = diffuse(l, spec, options, h);
    std::string error;
    const MxTensor direct = quantize_ref(l.w, std::vector<int64_t>{l.n, l.k}, spec, &error);
    ASSERT_EQ(error, "");
    const std::vector<float> rule = dequantize_ref(direct);
    int moved = 0;
    for (int64_t b = 0; b < l.n * l.k / 32; ++b) {
      double e_rule = 0, e_searched = 0;
      for (int64_t i = b * 32; i < (b + 1) * 32; ++i) {
        e_rule += std::pow(double(l.w[size_t(i)]) - rule[size_t(i)], 2);
        e_searched += std::pow(double(l.w[size_t(i)]) - searched.values[size_t(i)], 2);
      }
      EXPECT_LE(e_searched, e_rule) << b;
      moved += searched.tensor.scales[size_t(b)] != direct.scales[size_t(b)];
    }
    EXPECT_GT(moved, 0) << describe(spec);
  }
}

// Under H = I no error moves inside a block either, and every column weighs the same: the
// look-ahead's objective is the search's squared error over a constant, so both choose alike.
TEST(ErrorDiffusion, LookaheadWithTheIdentityHessianChoosesAsTheSearch) {
  const Layer l(5, 80);
  const std::vector<float> h = identity(l.k);
  for (const ElementFormat format :
       {ElementFormat::kE2M1, ElementFormat::kInt4, ElementFormat::kE3M2}) {
    const QuantSpec spec = spec_of(format);
    GptqOptions search, lookahead;
    search.scale = ScaleChoice::kNeighbors;
    lookahead.scale = ScaleChoice::kLookahead;
    EXPECT_TRUE(
        same_tensor(diffuse(l, spec, lookahead, h).tensor, diffuse(l, spec, search, h).tensor))
        << describe(spec);
  }
}

// In natural order the first block of each row (inputs 0-31) gets its scale before any error
// reaches it. Quantizing its columns in order, each err = (w - q) / U[i][i] passed on to the
// block's later columns, the look-ahead must take, of the rule's scale and its two neighbours,
// the one with the least sum of err^2 (the rule's on a tie, then the lower). Under a correlated
// Hessian that differs from the search's choice in some rows.
TEST(ErrorDiffusion, LookaheadTakesTheScaleWithTheLeastObjectiveOverTheBlock) {
  const Layer l(6);
  const int64_t k = l.k;
  const QuantSpec spec = spec_of(ElementFormat::kE2M1);
  const FormatTraits& format = traits(spec.format);
  GptqOptions lookahead, search;
  lookahead.scale = ScaleChoice::kLookahead;
  search.scale = ScaleChoice::kNeighbors;
  const MxTensor chosen = diffuse(l, spec, lookahead).tensor;
  const MxTensor searched = diffuse(l, spec, search).tensor;
  const std::vector<int64_t> natural =
      column_order(std::vector<float>(size_t(k)), 1, ColumnOrder::kNatural);
  std::vector<double> factor = damped_hessian(l.h, k, natural, lookahead.damp);
  ASSERT_EQ(inverse_hessian_factor(&factor, k), "");
  const std::vector<float> u(factor.begin(), factor.end());  // as the quantizer holds it
  const int64_t blocks_per_row = k / 32;
  int differs_from_search = 0;
  for (int64_t r = 0; r < l.n; ++r) {
    const std::span<const float> w(l.w.data() + r * k, 32);
    const bool real[32] = {true, true, true, true, true, true, true, true, true, true, true,
                           true, true, true, true, true, true, true, true, true, true, true,
                           true, true, true, true, true, true, true, true, true, true};
    const BlockResult rule = choose_block_scale_ref(spec, w, real);
    auto objective = [&](uint8_t scale) {
      BlockResult block = rule;
      block.scale = scale;
      std::vector<double> v(w.begin(), w.end());
      double sum = 0;
      for (int64_t i = 0; i < 32; ++i) {
        const uint8_t code = encode_block_element_ref(spec, block, float(v[size_t(i)]), r * k + i);
        const double q = decode_value(format, code, scale, false, 0);
        const double err = (v[size_t(i)] - q) / double(u[size_t(i * k + i)]);
        sum += err * err;
        for (int64_t j = i + 1; j < 32; ++j) v[size_t(j)] -= double(u[size_t(i * k + j)]) * err;
      }
      return sum;
    };
    uint8_t best = rule.scale;
    double best_sum = objective(rule.scale);
    for (const int step : {-1, 1}) {
      const double sum = objective(uint8_t(rule.scale + step));
      if (sum < best_sum) best = uint8_t(rule.scale + step), best_sum = sum;
    }
    EXPECT_EQ(chosen.scales[size_t(r * blocks_per_row)], best) << "row " << r;
    differs_from_search +=
        chosen.scales[size_t(r * blocks_per_row)] != searched.scales[size_t(r * blocks_per_row)];
  }
  EXPECT_GT(differs_from_search, 0);
}

TEST(ErrorDiffusion, StoresAValidTensorThatDecodesToTheValuesItDiffusedAgainst) {
  const Layer l(4);
  for (const FormatTraits& f : all_formats()) {
    QuantSpec spec = spec_of(f.format);
    spec.asymmetric = f.format == ElementFormat::kInt4;
    GptqOptions options;
    options.order = ColumnOrder::kActColumns;
    const Result r = diffuse(l, spec, options);
    EXPECT_EQ(check_consistent(r.tensor), "") << f.mx_name;
    const std::vector<float> decoded = dequantize_ref(r.tensor);
    ASSERT_EQ(decoded.size(), r.values.size());
    EXPECT_EQ(std::memcmp(decoded.data(), r.values.data(), decoded.size() * sizeof(float)), 0)
        << f.mx_name;
  }
}

TEST(ErrorDiffusion, ItsTensorReadsBackFromMxSafetensorsUnchanged) {
  const Layer l(5);
  const Result r = diffuse(l, spec_of(ElementFormat::kE2M3));
  std::vector<io::TensorToWrite> tensors;
  std::map<std::string, std::string> metadata;
  ASSERT_EQ(io::add_mx_tensor("w", r.tensor, &tensors, &metadata), "");
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / "mx_ptq_roundtrip.safetensors").string();
  ASSERT_EQ(io::write_safetensors(path, tensors, metadata), "");
  io::SafetensorsFile file;
  ASSERT_EQ(io::open_safetensors(path, &file), "");
  MxTensor back;
  ASSERT_EQ(io::load_mx_tensor(file, "w", &back), "");
  EXPECT_TRUE(same_tensor(back, r.tensor));
  std::remove(path.c_str());
}

TEST(ErrorDiffusion, IsDeterministicForAnyThreadCount) {
  const Layer l(6);
  for (ColumnOrder o : {ColumnOrder::kNatural, ColumnOrder::kActColumns}) {
    GptqOptions options;
    options.order = o;
    options.threads = 1;
    const Result one = diffuse(l, spec_of(ElementFormat::kE2M1), options);
    for (int threads : {1, 2, 3, 0}) {
      options.threads = threads;
      const Result again = diffuse(l, spec_of(ElementFormat::kE2M1), options);
      EXPECT_TRUE(same_tensor(again.tensor, one.tensor)) << threads;
    }
  }
}

// Lazy batches reorder float sums only: whatever their size, and where a scale falls due on
// columns past the batch (act-columns), the result is the same up to a rare rounding flip.
TEST(ErrorDiffusion, BatchSizeChangesOnlyTheRoundingOfTheUpdates) {
  const Layer l(9);
  for (ColumnOrder o : {ColumnOrder::kNatural, ColumnOrder::kActColumns}) {
    GptqOptions options;
    options.order = o;
    options.batch_columns = 1;
    const Result unbatched = diffuse(l, spec_of(ElementFormat::kE2M1), options);
    for (int64_t batch : {7, 32, 128}) {
      options.batch_columns = batch;
      const Result r = diffuse(l, spec_of(ElementFormat::kE2M1), options);
      int64_t differ = 0;
      for (size_t i = 0; i < r.values.size(); ++i) differ += r.values[i] != unbatched.values[i];
      EXPECT_LE(differ, int64_t(r.values.size()) / 100) << batch << column_order_name(o);
      EXPECT_NEAR(l.output_error(r.values), l.output_error(unbatched.values),
                  0.02 * l.output_error(unbatched.values));
    }
  }
}

TEST(ErrorDiffusion, RefusesBadInputsWithOneLine) {
  const Layer l(2, 64);
  MxTensor t;
  const QuantSpec spec = spec_of(ElementFormat::kE2M1);
  std::vector<float> w = l.w;
  w[5] = NAN;
  EXPECT_EQ(gptq_quantize(w, l.n, l.k, l.h, spec, {}, &t), "the weight holds NaN or Inf");
  EXPECT_NE(gptq_quantize(l.w, l.n, l.k, std::span(l.h).first(10), spec, {}, &t), "");
  GptqOptions negative;
  negative.damp = -1;
  EXPECT_NE(gptq_quantize(l.w, l.n, l.k, l.h, spec, negative, &t), "");
  // Two inputs that are always equal: without dampening H is singular.
  std::vector<float> singular = identity(l.k);
  singular[1] = singular[size_t(l.k)] = 1.0f;
  GptqOptions undamped;
  undamped.damp = 0;
  const std::string e = gptq_quantize(l.w, l.n, l.k, singular, spec, undamped, &t);
  EXPECT_NE(e.find("raise the dampening"), std::string::npos) << e;
  QuantSpec bad = spec;
  bad.axis = 2;
  EXPECT_NE(gptq_quantize(l.w, l.n, l.k, l.h, bad, {}, &t), "");
}

// sum over rows of (w - q)^T (H + damp * mean(diag H) I) (w - q): the objective that the
// refinement descends (no input of the Layer is dead).
double damped_objective(const Layer& l, const std::vector<float>& q, double damp) {
  double mean = 0;
  for (int64_t c = 0; c < l.k; ++c) mean += l.h[size_t(c * l.k + c)];
  mean /= double(l.k);
  double sum = 0;
  for (int64_t r = 0; r < l.n; ++r) {
    for (int64_t i = 0; i < l.k; ++i) {
      const double ei = double(l.w[size_t(r * l.k + i)]) - q[size_t(r * l.k + i)];
      for (int64_t j = 0; j < l.k; ++j) {
        const double ej = double(l.w[size_t(r * l.k + j)]) - q[size_t(r * l.k + j)];
        sum += ei * ej * (double(l.h[size_t(i * l.k + j)]) + (i == j ? damp * mean : 0.0));
      }
    }
  }
  return sum;
}

TEST(Refinement, NeverRaisesGptqsObjectiveAndLowersItForFourBitFormats) {
  const Layer l(11);
  for (const FormatTraits& f : all_formats()) {
    QuantSpec spec = spec_of(f.format);
    spec.asymmetric = f.format == ElementFormat::kInt4;
    GptqOptions options;
    const double gptq = damped_objective(l, diffuse(l, spec, options).values, options.damp);
    options.refine_passes = 3;
    const Result refined = diffuse(l, spec, options);
    const double after = damped_objective(l, refined.values, options.damp);
    EXPECT_LE(after, gptq * (1 + 1e-9)) << f.mx_name;
    if (f.bits == 4) {
      EXPECT_LT(after, 0.99 * gptq) << f.mx_name;
    }
    // The stored tensor is still whole and decodes to the values refined.
    EXPECT_EQ(check_consistent(refined.tensor), "") << f.mx_name;
    const std::vector<float> decoded = dequantize_ref(refined.tensor);
    EXPECT_EQ(std::memcmp(decoded.data(), refined.values.data(), decoded.size() * sizeof(float)), 0)
        << f.mx_name;
  }
}

// Under H = I the best value of each element is the nearest one, which the direct cast took.
TEST(Refinement, WithTheIdentityHessianLeavesTheDirectCastBitForBit) {
  const Layer l(3, 80);
  const std::vector<float> h = identity(l.k);
  const int64_t shape[2] = {l.n, l.k};
  for (const QuantSpec& spec : specs_of_every_kind()) {
    if (!refinement_keeps(spec.rounding)) continue;
    std::string error;
    const MxTensor direct = quantize_ref(l.w, shape, spec, &error);
    ASSERT_EQ(error, "");
    GptqOptions options;
    options.refine_passes = 2;
    EXPECT_TRUE(same_tensor(diffuse(l, spec, options, h).tensor, direct)) << describe(spec);
  }
}

TEST(Refinement, IsDeterministicForAnyThreadCountAndRefusesOtherRoundings) {
  const Layer l(12);
  GptqOptions options;
  options.refine_passes = 2;
  options.threads = 1;
  const Result one = diffuse(l, spec_of(ElementFormat::kE2M1), options);
  for (int threads : {2, 3, 0}) {
    options.threads = threads;
    EXPECT_TRUE(same_tensor(diffuse(l, spec_of(ElementFormat::kE2M1), options).tensor, one.tensor))
        << threads;
  }
  QuantSpec stochastic = spec_of(ElementFormat::kE2M1);
  stochastic.rounding = Rounding::kStochastic;
  MxTensor t;
  EXPECT_EQ(gptq_quantize(l.w, l.n, l.k, l.h, stochastic, options, &t),
            "refinement keeps nearest roundings only, and the spec rounds stochastic");
}

}  // namespace
}  // namespace mx::ptq
