// Block rotations before MX casts: the transform itself, and the casts of the recipes that use it.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "mx/nn/block_rotation.h"
#include "mx/nn/cpu/matmul.h"
#include "mx/nn/cpu/sgemm.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/recipe.h"

namespace mx::nn {
namespace {

std::vector<float> normal_values(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = d(rng);
  return v;
}

// Entry (i, j) of the normalized Walsh-Hadamard matrix of size n (Sylvester's order).
double hadamard(int64_t i, int64_t j, int64_t n) {
  return (std::popcount(uint64_t(i & j)) % 2 == 0 ? 1.0 : -1.0) / std::sqrt(double(n));
}

// The rotation of a [2, 70, 3] tensor along its middle axis, by the matrix definition in double:
// blocks at 0 and 32 rotate, the last 6 rows (a part block) stay.
TEST(BlockRotation, EachWholeBlockIsMultipliedByTheNormalizedHadamardMatrix) {
  const int64_t outer = 2, length = 70, inner = 3, block = 32;
  const std::vector<int64_t> shape{outer, length, inner};
  const std::vector<float> x = normal_values(outer * length * inner, 1);
  std::vector<float> y = x;
  hadamard_rotate_blocks(y.data(), shape, 1, int(block));
  auto at = [&](const std::vector<float>& v, int64_t o, int64_t r, int64_t i) {
    return v[size_t((o * length + r) * inner + i)];
  };
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      for (int64_t r = 0; r < length; ++r) {
        const int64_t start = r / block * block;
        if (start + block > length) {
          EXPECT_EQ(at(y, o, r, i), at(x, o, r, i)) << "part block row " << r;
          continue;
        }
        double want = 0;
        for (int64_t c = 0; c < block; ++c) {
          want += hadamard(r - start, c, block) * at(x, o, start + c, i);
        }
        // Five rounded butterfly stages and one rounded scaling of values of size ~6: a few
        // float32 ulps, far below the ~0.2 that one wrong sign would cost.
        EXPECT_NEAR(at(y, o, r, i), want, 1e-5) << o << ' ' << r << ' ' << i;
      }
    }
  }
}

TEST(BlockRotation, RotatingTwiceGivesTheValuesBack) {
  const std::vector<int64_t> shape{5, 64};
  const std::vector<float> x = normal_values(5 * 64, 2);
  for (int axis : {0, 1}) {
    std::vector<float> y = x;
    const int block = axis == 0 ? 4 : 32;
    hadamard_rotate_blocks(y.data(), shape, axis, block);
    EXPECT_NE(y, x);
    hadamard_rotate_blocks(y.data(), shape, axis, block);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-6f * 8) << axis << ' ' << i;
  }
}

// A rotated cast is the MX cast of the rotated operand, rotated back: a product of two such
// operands is the product of the two casts in the rotated basis, (x R)(w R)^T with R undone.
TEST(BlockRotation, ARotatedProductIsTheProductOfTheRotatedOperandsCasts) {
  const int64_t m = 24, k = 96, n = 16;
  const std::vector<float> x = normal_values(m * k, 3), w = normal_values(n * k, 4);
  Recipe rotated, plain;
  ASSERT_EQ(parse_recipe_json(R"({"weight_fwd": {"format": "mxfp4_e2m1", "rotate": "hadamard"},
                                  "act_fwd": {"format": "mxfp4_e2m1", "rotate": "hadamard"}})",
                              &rotated),
            "");
  ASSERT_EQ(parse_recipe_json(R"({"weight_fwd": "mxfp4_e2m1", "act_fwd": "mxfp4_e2m1"})", &plain),
            "");
  cpu::MatmulScratch scratch;
  std::vector<float> got(size_t(m * n)), want(size_t(m * n)), unrotated(size_t(m * n));
  ASSERT_EQ(
      cpu::matmul_forward(got.data(), x.data(), w.data(), nullptr, m, k, n, rotated, 0, scratch, 0),
      "");
  // The casts of the rotated operands, multiplied where they are (no rotation back).
  std::vector<float> xr = x, wr = w;
  const int64_t xs[2] = {m, k}, ws[2] = {n, k};
  hadamard_rotate_blocks(xr.data(), xs, 1, 32);
  hadamard_rotate_blocks(wr.data(), ws, 1, 32);
  ASSERT_EQ(cpu::matmul_forward(want.data(), xr.data(), wr.data(), nullptr, m, k, n, plain, 0,
                                scratch, 0),
            "");
  ASSERT_EQ(cpu::matmul_forward(unrotated.data(), x.data(), w.data(), nullptr, m, k, n, plain, 0,
                                scratch, 0),
            "");
  double max_diff = 0, max_plain_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    // R R^T = I up to the float32 rounding of the two rotations back: sums of ~96 products
    // of size ~1 err by ~1e-5 from it; the unrotated casts differ by the casts' own error.
    EXPECT_NEAR(got[i], want[i], 1e-4) << i;
    max_diff = std::max(max_diff, double(std::fabs(got[i] - want[i])));
    max_plain_diff = std::max(max_plain_diff, double(std::fabs(got[i] - unrotated[i])));
  }
  EXPECT_GT(max_plain_diff, 100 * max_diff);
}

TEST(BlockRotation, RecipesReadWriteAndDescribeTheRotation) {
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxfp6_e3m2", "rotate": "hadamard"}})", &r),
            "");
  EXPECT_TRUE(r.act_fwd.is_rotated());
  EXPECT_FALSE(r.weight_fwd.is_rotated());
  EXPECT_TRUE(has_block_rotation(r));
  EXPECT_NE(describe(r).find("rotate=hadamard"), std::string::npos);
  Recipe back;
  ASSERT_EQ(parse_recipe_json(recipe_to_json(r), &back), "");
  EXPECT_EQ(back.act_fwd, r.act_fwd);
  // An unrotated recipe's JSON has no rotation field at all.
  EXPECT_EQ(recipe_to_json(*recipe_preset("mxfp4")).find("rotate"), std::string::npos);
  EXPECT_FALSE(has_block_rotation(*recipe_preset("mxfp4")));
  EXPECT_EQ(parse_recipe_json(R"({"act_fwd": {"format": "mxfp4_e2m1", "rotate": "dct"}})", &r),
            "recipe role 'act_fwd': unknown rotation 'dct' (hadamard or none)");
  EXPECT_EQ(parse_recipe_json(
                R"({"act_fwd": {"format": "mxfp4_e2m1", "block": 24, "rotate": "hadamard"}})", &r),
            "recipe role 'act_fwd': a Hadamard rotation needs blocks of a power of two, not 24");
}

// Only the CPU backend rotates: the GPU refuses such a recipe rather than casting unrotated.
TEST(BlockRotation, TheCudaDeviceRefusesARotatedRecipe) {
  Recipe r;
  ASSERT_EQ(parse_recipe_json(R"({"name": "w4-rotated",
      "weight_fwd": {"format": "mxfp4_e2m1", "rotate": "hadamard"}})",
                              &r),
            "");
  DeviceOptions options;
  options.device = "cuda";
  std::unique_ptr<Backend> backend;
  EXPECT_EQ(make_backend(options, r, &backend),
            "--device cuda: recipe w4-rotated rotates its blocks before casting them, which only "
            "the CPU backend does");
  EXPECT_EQ(backend, nullptr);
}

}  // namespace
}  // namespace mx::nn
