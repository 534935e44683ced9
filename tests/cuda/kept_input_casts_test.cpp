// The CUDA backend's kept input casts (Backend::input_kept_count): handed a product input with
// room past its values, a training forward casts it along its rows and down its columns in one
// read and keeps the second cast there, and the backward's weight gradient reads it instead of
// casting the input again. Both ways give the same products bit for bit. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

constexpr int64_t kRows = 256, kIn = 128, kOut = 192;

// x[kRows, kIn] holding `values`, with the room the backend asks for past them or without it.
Buf input(Backend& be, const std::vector<float>& values, const Recipe& recipe, bool room) {
  const int64_t extra = room ? be.input_kept_count(kRows, kIn, recipe) : 0;
  const Buf x = be.alloc(BufType::kBF16, kRows * kIn + extra);
  const Buf filled = upload(be, BufType::kBF16, values);
  be.copy(x.at(0, kRows * kIn), filled);
  be.release(filled);
  return x;
}

struct Linear {
  Buf w, bias, dy;
};

Linear layer(Backend& be, uint32_t seed) {
  return {upload(be, BufType::kF32, normal(size_t(kOut * kIn), seed, 0.1f)),
          upload(be, BufType::kF32, normal(size_t(kOut), seed + 1, 0.5f)),
          upload(be, BufType::kBF16, normal(size_t(kRows * kOut), seed + 2))};
}

struct Results {
  std::vector<float> y, dx, dw, dbias;
};

// One linear layer's forward on `forward_x`, then its backward on x, as a training pass hands
// them over.
Results forward_backward(Backend& be, const Linear& l, Buf forward_x, Buf x, const Recipe& recipe) {
  const SrKey key{3, 1, 5};
  const Buf y = be.alloc(BufType::kBF16, kRows * kOut), dx = be.alloc(BufType::kBF16, kRows * kIn);
  const Buf dw = be.alloc(BufType::kF32, kOut * kIn), dbias = be.alloc(BufType::kF32, kOut);
  be.matmul_forward(y, forward_x, l.w, l.bias, kRows, kIn, kOut, recipe, key);
  be.matmul_backward(dx, dw, dbias, l.dy, x, l.w, kRows, kIn, kOut, false, recipe, key);
  EXPECT_EQ(be.take_error(), "");
  return {download(be, y), download(be, dx), download(be, dw), download(be, dbias)};
}

TEST(KeptInputCasts, MxPresetsAskForRoomForOneCastAndBfloat16ForNone) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  EXPECT_EQ(be->input_kept_count(kRows, kIn, *recipe_preset("bf16")), 0);
  for (const char* name : {"mxfp6", "mxfp4", "mxfp8", "mxint8"}) {
    SCOPED_TRACE(name);
    EXPECT_GE(be->input_kept_count(kRows, kIn, *recipe_preset(name)), kRows * kIn);
  }
  // Packed products cast their operands as packed blocks: nothing to keep.
  const std::unique_ptr<Backend> packed = gpu(BufType::kBF16, &ok, /*packed_products=*/true);
  if (!ok) return;
  EXPECT_EQ(packed->input_kept_count(kRows, kIn, *recipe_preset("mxfp6")), 0);
}

TEST(KeptInputCasts, ProductsMatchThoseOfCastsMadeInTheBackward) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"bf16", "mxfp6", "mxfp4", "mxint8"}) {
    SCOPED_TRACE(name);
    bool ok = false;
    const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
    if (!ok) return;
    const Recipe recipe = *recipe_preset(name);
    const std::vector<float> values = normal(size_t(kRows * kIn), 1);
    const Linear l = layer(*be, 2);
    const Buf kept = input(*be, values, recipe, true), made = input(*be, values, recipe, false);
    const Results with_room = forward_backward(*be, l, kept, kept, recipe);
    const Results without = forward_backward(*be, l, made, made, recipe);
    EXPECT_EQ(with_room.y, without.y);
    EXPECT_EQ(with_room.dx, without.dx);
    EXPECT_EQ(with_room.dw, without.dw);
    EXPECT_EQ(with_room.dbias, without.dbias);

    // Products of one input (attention's q, k and v) share the kept cast.
    std::vector<Linear> three = {l, layer(*be, 5), layer(*be, 8)};
    auto shared = [&](Buf x) {
      std::vector<Backend::Product> products;
      std::vector<Backend::ProductGrad> grads;
      for (int i = 0; i < 3; ++i) {
        const SrKey key{3, 2, i};
        const Buf dw = be->alloc(BufType::kF32, kOut * kIn);
        products.push_back({be->alloc(BufType::kBF16, kRows * kOut), three[size_t(i)].w,
                            three[size_t(i)].bias, kOut, key});
        grads.push_back({dw, {}, three[size_t(i)].dy, three[size_t(i)].w, kOut, key});
      }
      const Buf dx = be->alloc(BufType::kBF16, kRows * kIn);
      be->matmuls_forward(products, x, kRows, kIn, recipe);
      be->matmuls_backward(dx, grads, x, kRows, kIn, false, recipe);
      EXPECT_EQ(be->take_error(), "");
      std::vector<std::vector<float>> out = {download(*be, dx)};
      for (int i = 0; i < 3; ++i) {
        out.push_back(download(*be, products[size_t(i)].y));
        out.push_back(download(*be, grads[size_t(i)].dw));
      }
      return out;
    };
    EXPECT_EQ(shared(kept), shared(made));
  }
}

TEST(KeptInputCasts, TheWeightGradientReadsTheCastThatTheForwardKept) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const Recipe recipe = *recipe_preset("mxfp6");
  const std::vector<float> first = normal(size_t(kRows * kIn), 1);
  const std::vector<float> second = normal(size_t(kRows * kIn), 2);
  const Linear l = layer(*be, 3);
  const Results from_first = forward_backward(*be, l, input(*be, first, recipe, false),
                                              input(*be, first, recipe, false), recipe);
  const Buf changed = input(*be, second, recipe, false);
  const Results from_second = forward_backward(*be, l, changed, changed, recipe);
  ASSERT_NE(from_first.dw, from_second.dw);

  // x changes between the forward and the backward, which a training pass never does: a
  // backward that read x again would give the second values' dW.
  const Buf x = input(*be, first, recipe, true);
  const SrKey key{3, 1, 5};
  const Buf y = be->alloc(BufType::kBF16, kRows * kOut);
  const Buf dx = be->alloc(BufType::kBF16, kRows * kIn), dw = be->alloc(BufType::kF32, kOut * kIn);
  be->matmul_forward(y, x, l.w, l.bias, kRows, kIn, kOut, recipe, key);
  be->copy(x.at(0, kRows * kIn), changed);
  be->matmul_backward(dx, dw, {}, l.dy, x, l.w, kRows, kIn, kOut, false, recipe, key);
  EXPECT_EQ(be->take_error(), "");
  EXPECT_EQ(download(*be, dw), from_first.dw);

  // A forward handed x without its room keeps nothing, and drops what an earlier one kept.
  const Buf dw2 = be->alloc(BufType::kF32, kOut * kIn);
  be->copy(x.at(0, kRows * kIn), input(*be, first, recipe, false));
  be->matmul_forward(y, x, l.w, l.bias, kRows, kIn, kOut, recipe, key);
  be->matmul_forward(y, x.at(0, kRows * kIn), l.w, l.bias, kRows, kIn, kOut, recipe, key);
  be->copy(x.at(0, kRows * kIn), changed);
  be->matmul_backward(dx, dw2, {}, l.dy, x, l.w, kRows, kIn, kOut, false, recipe, key);
  EXPECT_EQ(be->take_error(), "");
  EXPECT_EQ(download(*be, dw2), from_second.dw);
}

}  // namespace
}  // namespace mx::nn
