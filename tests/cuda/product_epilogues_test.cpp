// The CUDA backend's fused forms against the same steps one at a time (the Backend defaults) on
// the same backend. The GELU and residual additions in its products' epilogues
// (matmul_gelu_forward, matmul_backward_gelu, matmul_residual_forward): the operands' casts are
// the same, so every result agrees up to where each path rounds to bfloat16 and the order of
// float32 additions, and the products that the GELU does not touch (dW, the bias gradient) agree
// bit for bit. The products of one input (matmuls_forward, matmuls_backward): bit for bit.
// The bias gradient from the dual cast's read of dy: bit for bit. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

// The largest difference, as a fraction of the largest magnitude in `want`.
double relative_gap(const std::vector<float>& got, const std::vector<float>& want) {
  double gap = 0, top = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    gap = std::max(gap, double(std::fabs(got[i] - want[i])));
    top = std::max(top, double(std::fabs(want[i])));
  }
  return top > 0 ? gap / top : gap;
}

// fn(backend, recipe) for each preset the tests cover, each on a new CUDA backend with
// bfloat16 activations.
template <class Fn>
void for_each_preset(Fn fn) {
  for (const char* name : {"bf16", "mxfp6", "mxfp4"}) {
    SCOPED_TRACE(name);
    bool ok = false;
    const std::unique_ptr<Backend> backend = gpu(BufType::kBF16, &ok);
    if (!ok) return;
    fn(*backend, *recipe_preset(name));
  }
}

TEST(GeluEpilogue, ForwardAndBackwardMatchTheStepsOneAtATime) {
  SKIP_WITHOUT_GPU();
  for_each_preset([](Backend& be, const Recipe& recipe) {
    // GPT-2's MLP at a small size: x[m, c] -> pre[m, h] -> gelu -> y[m, c].
    const int64_t m = 256, c = 128, h = 512;
    const Buf x = upload(be, BufType::kBF16, normal(size_t(m * c), 1, 1.0f));
    const Buf w_fc = upload(be, BufType::kF32, normal(size_t(h * c), 2, 0.1f));
    const Buf b_fc = upload(be, BufType::kF32, normal(size_t(h), 3, 0.5f));
    const Buf w_proj = upload(be, BufType::kF32, normal(size_t(c * h), 4, 0.05f));
    const Buf dy = upload(be, BufType::kBF16, normal(size_t(m * c), 5, 1.0f));
    const SrKey key{7, 0, 0};

    // Each path's forward; then each path's backward on the same inputs (the two-step forward's
    // output and GELU input), so that only the GELU's slope is done two ways.
    const Buf out = be.alloc(BufType::kBF16, m * h), pre = be.alloc(BufType::kBF16, m * h);
    auto forward = [&](bool fused) {
      const Buf o = be.alloc(BufType::kBF16, m * h), p = be.alloc(BufType::kBF16, m * h);
      if (fused) {
        be.matmul_gelu_forward(o, p, x, w_fc, b_fc, m, c, h, true, recipe, key);
      } else {
        be.Backend::matmul_gelu_forward(o, p, x, w_fc, b_fc, m, c, h, true, recipe, key);
        be.copy(out, o);
        be.copy(pre, p);
      }
      EXPECT_EQ(be.take_error(), "");
      std::pair<std::vector<float>, std::vector<float>> r{download(be, o), download(be, p)};
      be.release(o);
      be.release(p);
      return r;
    };
    struct Grads {
      std::vector<float> dpre, dw, dbias;
    };
    auto backward = [&](bool fused) {
      const Buf dpre = be.alloc(BufType::kBF16, m * h), dx = be.alloc(BufType::kBF16, m * h);
      const Buf dw = be.alloc(BufType::kF32, c * h), dbias = be.alloc(BufType::kF32, c);
      be.zero(dw);
      be.zero(dbias);
      if (fused) {
        be.matmul_backward_gelu(dpre, dx, dw, dbias, dy, out, w_proj, pre, m, h, c, recipe, key);
      } else {
        be.Backend::matmul_backward_gelu(dpre, dx, dw, dbias, dy, out, w_proj, pre, m, h, c, recipe,
                                         key);
      }
      EXPECT_EQ(be.take_error(), "");
      Grads r{download(be, dpre), download(be, dw), download(be, dbias)};
      for (const Buf& b : {dpre, dx, dw, dbias}) be.release(b);
      return r;
    };
    const auto [steps_out, steps_pre] = forward(false);
    const auto [fused_out, fused_pre] = forward(true);
    const Grads steps = backward(false), fused = backward(true);
    // Where cuBLASLt offers no epilogue the backend takes the two steps, bit for bit the
    // defaults'; the rounding from float32 makes some outputs differ where the epilogues ran.
    EXPECT_NE(fused_out, steps_out) << "the GELU epilogue did not run";
    EXPECT_NE(fused.dpre, steps.dpre) << "the GELU slope epilogue did not run";
    // pre: the same product and bias, rounded once either way.
    EXPECT_LT(relative_gap(fused_pre, steps_pre), 1.0 / 256);
    // gelu(pre) from the float32 sum against gelu of its bfloat16 rounding: a rounding apart.
    EXPECT_LT(relative_gap(fused_out, steps_out), 1.0 / 128);
    // d(pre) = gelu'(pre) (dy W): the product unrounded against rounded before the slope.
    EXPECT_LT(relative_gap(fused.dpre, steps.dpre), 1.0 / 64);
    // dW and dbias read the same dy and GELU output on both paths, through the same products.
    EXPECT_EQ(fused.dw, steps.dw);
    EXPECT_EQ(fused.dbias, steps.dbias);
    be.release(out);
    be.release(pre);
  });
}

// out = residual + (x W^T + bias): rounded once from float32 in the epilogue, against the product
// rounded to bfloat16 and then added and rounded again.
TEST(ResidualEpilogue, MatchesTheProductThenTheSum) {
  SKIP_WITHOUT_GPU();
  for_each_preset([](Backend& be, const Recipe& recipe) {
    const int64_t m = 256, k = 512, n = 128;  // GPT-2's MLP projection at a small size
    const Buf x = upload(be, BufType::kBF16, normal(size_t(m * k), 11, 1.0f));
    const Buf w = upload(be, BufType::kF32, normal(size_t(n * k), 12, 0.05f));
    const Buf bias = upload(be, BufType::kF32, normal(size_t(n), 13, 0.5f));
    const Buf residual = upload(be, BufType::kBF16, normal(size_t(m * n), 14, 2.0f));
    const SrKey key{3, 1, 0};
    auto run = [&](bool fused) {
      const Buf out = be.alloc(BufType::kBF16, m * n);
      if (fused) {
        be.matmul_residual_forward(out, x, w, bias, residual, m, k, n, true, recipe, key);
      } else {
        be.Backend::matmul_residual_forward(out, x, w, bias, residual, m, k, n, true, recipe, key);
      }
      EXPECT_EQ(be.take_error(), "");
      std::vector<float> r = download(be, out);
      be.release(out);
      return r;
    };
    const std::vector<float> steps = run(false), fused = run(true);
    EXPECT_NE(fused, steps) << "the residual epilogue did not run";
    // Two roundings against one: within a bfloat16 rounding of the largest output.
    EXPECT_LT(relative_gap(fused, steps), 1.0 / 128);
  });
}

// Under MX casts of dy, the one read that casts dy for both backward products also sums its
// columns per 32-row tile; the bias gradient from those sums has the bits of the column-sum pass
// that a backward without dx (so without the dual cast) takes, and adds to what dbias held.
// Both routes give the same bits by design, so this holds them to each other, not the sums to
// their values: CudaQuantize.DualFakeQuantizeSumsEachTilesColumnsInOneOrder checks the kernel's
// sums, and CudaBackend.BiasGradientSumsEveryRowOfItsColumn the column-sum pass.
TEST(BiasGradientFromTheDualCast, EqualsTheColumnSumPassBitForBit) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"mxfp6", "mxfp4"}) {
    SCOPED_TRACE(name);
    bool ok = false;
    const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
    if (!ok) return;
    const Recipe recipe = *recipe_preset(name);
    const int64_t m = 200, k = 256, n = 384;  // the last tile holds 8 rows
    const std::vector<float> before = normal(size_t(n), 31, 3.0f);
    const Buf x = upload(*be, BufType::kBF16, normal(size_t(m * k), 32, 1.0f));
    const Buf w = upload(*be, BufType::kF32, normal(size_t(n * k), 33, 0.05f));
    const Buf dy = upload(*be, BufType::kBF16, normal(size_t(m * n), 34, 1.0f));
    auto bias_grad = [&](bool with_dx) {
      const Buf dx = with_dx ? be->alloc(BufType::kBF16, m * k) : Buf{};
      const Buf dw = be->alloc(BufType::kF32, n * k);
      const Buf dbias = upload(*be, BufType::kF32, before);
      be->zero(dw);
      be->matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, false, recipe, {5, 2, 0});
      EXPECT_EQ(be->take_error(), "");
      return download(*be, dbias);
    };
    const std::vector<float> fused = bias_grad(true), separate = bias_grad(false);
    EXPECT_EQ(fused, separate);
    EXPECT_NE(fused, before);
  }
}

// Products of one input (attention's Q, K and V) cast that input once: the same casts and the
// same products as one product at a time (the Backend defaults), so every output agrees bit for
// bit, forward and backward. The widths are unequal (grouped-query K and V), and one product has
// no bias.
TEST(SharedInputCasts, ProductsOfOneInputMatchTheProductsOneAtATime) {
  SKIP_WITHOUT_GPU();
  for_each_preset([](Backend& be, const Recipe& recipe) {
    const int64_t m = 256, c = 128;
    const int64_t widths[3] = {128, 64, 64};
    const Buf x = upload(be, BufType::kBF16, normal(size_t(m * c), 11, 1.0f));
    std::vector<Buf> w, bias, dy;
    for (int i = 0; i < 3; ++i) {
      w.push_back(upload(be, BufType::kF32, normal(size_t(widths[i] * c), 12 + i, 0.1f)));
      bias.push_back(i < 2 ? upload(be, BufType::kF32, normal(size_t(widths[i]), 15 + i, 0.5f))
                           : Buf{});
      dy.push_back(upload(be, BufType::kBF16, normal(size_t(m * widths[i]), 18 + i, 1.0f)));
    }
    struct Result {
      std::vector<std::vector<float>> y, dw, dbias;
      std::vector<float> dx;
    };
    auto run = [&](bool shared) {
      Result r;
      std::vector<Backend::Product> products;
      std::vector<Backend::ProductGrad> grads;
      for (int i = 0; i < 3; ++i) {
        const SrKey key{5, 1, i};
        products.push_back(
            {be.alloc(BufType::kBF16, m * widths[i]), w[i], bias[i], widths[i], key});
        Buf dw = be.alloc(BufType::kF32, widths[i] * c), db;
        be.zero(dw);
        if (!bias[i].empty()) {
          db = be.alloc(BufType::kF32, widths[i]);
          be.zero(db);
        }
        grads.push_back({dw, db, dy[i], w[i], widths[i], key});
      }
      const Buf dx = be.alloc(BufType::kBF16, m * c);
      if (shared) {
        be.matmuls_forward(products, x, m, c, recipe);
        be.matmuls_backward(dx, grads, x, m, c, false, recipe);
      } else {
        be.Backend::matmuls_forward(products, x, m, c, recipe);
        be.Backend::matmuls_backward(dx, grads, x, m, c, false, recipe);
      }
      EXPECT_EQ(be.take_error(), "");
      for (int i = 0; i < 3; ++i) {
        r.y.push_back(download(be, products[size_t(i)].y));
        r.dw.push_back(download(be, grads[size_t(i)].dw));
        if (!bias[i].empty()) r.dbias.push_back(download(be, grads[size_t(i)].dbias));
      }
      r.dx = download(be, dx);
      return r;
    };
    const Result one_at_a_time = run(false), shared = run(true);
    for (int i = 0; i < 3; ++i) {
      SCOPED_TRACE(i);
      EXPECT_EQ(shared.y[size_t(i)], one_at_a_time.y[size_t(i)]);
      EXPECT_EQ(shared.dw[size_t(i)], one_at_a_time.dw[size_t(i)]);
    }
    EXPECT_EQ(shared.dbias, one_at_a_time.dbias);
    EXPECT_EQ(shared.dx, one_at_a_time.dx);
  });
}

}  // namespace
}  // namespace mx::nn
