// The CUDA backend's kept weight casts: for a matrix among the weights it holds (hold_weights)
// under a deterministic MX cast, each cast is made once after each change to the weights and
// read by every product after it, from the second pass that asks for it on. The products are
// those of casts made at each use, bit for bit. Skips without a GPU.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

constexpr int64_t kRows = 256, kIn = 128, kOut = 192;
// The weights as a model lays them out: a norm's vector, then a matrix whose casts start on a
// 256-byte boundary (kept), its bias, then one whose casts would not (made at each use).
constexpr int64_t kAligned = 128, kBias = kAligned + kOut * kIn, kUnaligned = kBias + kOut;
constexpr int64_t kWeights = kUnaligned + kOut * kIn;

struct Layer {
  Buf weights, dy;
  Buf w(int64_t offset) const { return weights.at(offset, kOut * kIn); }
  Buf bias() const { return weights.at(kBias, kOut); }
};

// With `held`, the backend is told that `weights` are the model's weights (the kept casts).
Layer layer(Backend& be, bool held) {
  Layer l{upload(be, BufType::kF32, normal(size_t(kWeights), 1, 0.1f)),
          upload(be, BufType::kBF16, normal(size_t(kRows * kOut), 2))};
  if (held) be.hold_weights(l.weights);
  return l;
}

struct Results {
  std::vector<float> y, dx, dw;
  friend bool operator==(const Results&, const Results&) = default;
};

// A forward and backward of the matrix at `offset` on x, as a training pass makes them.
Results forward_backward(Backend& be, const Layer& l, int64_t offset, Buf x, const Recipe& recipe) {
  const SrKey key{3, 1, 5};
  const Buf y = be.alloc(BufType::kBF16, kRows * kOut), dx = be.alloc(BufType::kBF16, kRows * kIn);
  const Buf dw = be.alloc(BufType::kF32, kOut * kIn), dbias = be.alloc(BufType::kF32, kOut);
  be.matmul_forward(y, x, l.w(offset), l.bias(), kRows, kIn, kOut, recipe, key);
  be.matmul_backward(dx, dw, dbias, l.dy, x, l.w(offset), kRows, kIn, kOut, false, recipe, key);
  EXPECT_EQ(be.take_error(), "");
  Results r{download(be, y), download(be, dx), download(be, dw)};
  for (const Buf b : {y, dx, dw, dbias}) be.release(b);
  return r;
}

void adamw_step(Backend& be, const Layer& l) {
  const Buf grads = upload(be, BufType::kF32, normal(size_t(kWeights), 3));
  const Buf m = be.alloc(BufType::kF32, kWeights), v = be.alloc(BufType::kF32, kWeights);
  const Buf decay = be.alloc(BufType::kU8, kWeights);
  be.adamw(l.weights, grads, m, v, decay, {1e-2f, 0.9f, 0.95f, 1e-8f, 0.0f, 0.1f, 0.05f});
  for (const Buf b : {grads, m, v, decay}) be.release(b);
}

TEST(WeightCasts, ProductsMatchThoseOfCastsMadeAtEachUseAcrossPassesAndUpdates) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"mxfp6", "mxfp4", "mxfp8", "mxint8", "mxfp4w-mxfp6a"}) {
    SCOPED_TRACE(name);
    const Recipe recipe = *recipe_preset(name);
    bool ok = false;
    const std::unique_ptr<Backend> kept = gpu(BufType::kBF16, &ok);
    if (!ok) return;
    const std::unique_ptr<Backend> made = gpu(BufType::kBF16, &ok);
    if (!ok) return;
    const Layer lk = layer(*kept, true), lm = layer(*made, false);
    const std::vector<float> values = normal(size_t(kRows * kIn), 4);
    const Buf xk = upload(*kept, BufType::kBF16, values),
              xm = upload(*made, BufType::kBF16, values);
    // Two passes (micro-batches) on the same weights, then two after an update of them.
    for (int pass = 0; pass < 4; ++pass) {
      SCOPED_TRACE(pass);
      if (pass == 2) adamw_step(*kept, lk), adamw_step(*made, lm);
      for (const int64_t offset : {kAligned, kUnaligned}) {
        EXPECT_EQ(forward_backward(*kept, lk, offset, xk, recipe),
                  forward_backward(*made, lm, offset, xm, recipe));
      }
    }
  }
}

TEST(WeightCasts, ProductsReadTheCastsMadeAfterTheLastChangeThatTheBackendSaw) {
  SKIP_WITHOUT_GPU();
  const Recipe recipe = *recipe_preset("mxfp6");
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const Layer l = layer(*be, true);
  const Buf x = upload(*be, BufType::kBF16, normal(size_t(kRows * kIn), 4));
  // The first pass casts at each use; the second keeps its casts.
  const Results first = forward_backward(*be, l, kAligned, x, recipe);
  const Results before = forward_backward(*be, l, kAligned, x, recipe);
  EXPECT_EQ(first, before);

  // New values written past the backend (no op of it sees the write): the products still read
  // the casts of the old ones...
  const std::vector<float> changed = normal(size_t(kWeights), 5, 0.1f);
  auto* stream = static_cast<cudaStream_t>(cuda_backend_stream(*be));
  ASSERT_EQ(cudaMemcpyAsync(l.weights.p, changed.data(), changed.size() * sizeof(float),
                            cudaMemcpyHostToDevice, stream),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(forward_backward(*be, l, kAligned, x, recipe), before);

  // ...until a write through the backend: then those of the new values.
  be->upload(l.weights, changed.data());
  const Results after = forward_backward(*be, l, kAligned, x, recipe);
  EXPECT_NE(after.y, before.y);
  const std::unique_ptr<Backend> fresh = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const Layer lf = layer(*fresh, false);
  fresh->upload(lf.weights, changed.data());
  const Buf xf = upload(*fresh, BufType::kBF16, download(*be, x));
  EXPECT_EQ(after, forward_backward(*fresh, lf, kAligned, xf, recipe));
}

constexpr int64_t kMib = 1 << 20;

// The layer's weights at the start of `floats` held weights (zeros past them).
Layer large_layer(Backend& be, int64_t floats) {
  const Layer small = layer(be, false);
  const Layer l{be.alloc(BufType::kF32, floats), small.dy};
  be.copy(l.weights.at(0, kWeights), small.weights);
  be.release(small.weights);
  be.hold_weights(l.weights);
  return l;
}

// Under MX casts the products read the weights' casts and only the bias epilogues read
// bfloat16 weights, so those are copies of the biases alone: a first pass over 2 GB of held
// weights takes far less than the 1 GB that a bfloat16 copy of them all would.
TEST(WeightCasts, BiasEpiloguesUnderMxCastsCopyTheBiasesAlone) {
  SKIP_WITHOUT_GPU();
  const Recipe recipe = *recipe_preset("mxfp6");
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const Layer l = large_layer(*be, 512 * kMib);
  const Buf x = upload(*be, BufType::kBF16, normal(size_t(kRows * kIn), 4));
  const int64_t free_before = be->memory_available();
  const Results held = forward_backward(*be, l, kAligned, x, recipe);
  EXPECT_LT(free_before - be->memory_available(), 256 * kMib);

  // The products are those of a backend that holds no weights (the bias converted at each use).
  const std::unique_ptr<Backend> unheld = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const Layer lu = layer(*unheld, false);
  const Buf xu = upload(*unheld, BufType::kBF16, download(*be, x));
  EXPECT_EQ(held, forward_backward(*unheld, lu, kAligned, xu, recipe));
}

TEST(WeightCasts, ABufferOfTheModelsThatWouldNotFitTakesTheirMemory) {
  SKIP_WITHOUT_GPU();
  const Recipe recipe = *recipe_preset("mxfp6");
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  // Weights of 512 MB, so that each of the two kept casts (forward and dx) takes 256 MB.
  const Layer l = large_layer(*be, 128 * kMib);
  // Leave 1200 MB free: enough for both casts (each needs twice its size free).
  const Buf filler = be->alloc(BufType::kU8, be->memory_available() - 1200 * kMib);
  ASSERT_FALSE(filler.empty()) << be->take_error();
  const Buf x = upload(*be, BufType::kBF16, normal(size_t(kRows * kIn), 4));
  const Results first = forward_backward(*be, l, kAligned, x, recipe);
  const int64_t free_before = be->memory_available();
  const Results kept = forward_backward(*be, l, kAligned, x, recipe);
  const int64_t free_kept = be->memory_available();
  ASSERT_GE(free_before - free_kept, 500 * kMib) << "the casts were not kept";

  // More than is free beside the casts, less than without them.
  const Buf model_buffer = be->alloc(BufType::kU8, free_kept + 256 * kMib);
  EXPECT_FALSE(model_buffer.empty());
  EXPECT_EQ(be->take_error(), "");
  EXPECT_EQ(forward_backward(*be, l, kAligned, x, recipe), first);
  EXPECT_EQ(kept, first);
  be->release(model_buffer);
  be->release(filler);
}

}  // namespace
}  // namespace mx::nn
