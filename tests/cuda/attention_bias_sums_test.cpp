// The CUDA backend's attention backward, given the bias gradients of the products that made Q, K
// and V, adds to them the column sums of the dq, dk and dv it writes, summed from its tiles as it
// stores them: the gradients a pass over dq, dk and dv would give, up to the order of the sums,
// the same bits on every run, and the outputs themselves unchanged. Skips without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/attention_test_support.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

constexpr float kBiasBefore = 0.25f;  // the gradients hold this before the pass, each element

struct Backward {
  std::vector<float> dq, dk, dv;
  std::vector<float> bq, bk, bv;  // empty where the pass took no bias gradients
};

Backward attend(Backend& be, const AttnShape& s, const Recipe& recipe, bool with_biases) {
  const AttentionBuffers a = attention_buffers(be, s, be.attn_saved_count(s, recipe));
  Backend::QkvBiasGrads biases;
  if (with_biases) {
    biases.q = upload(be, BufType::kF32, std::vector<float>(size_t(s.nh * s.hs), kBiasBefore));
    biases.k = upload(be, BufType::kF32, std::vector<float>(size_t(s.nkv * s.hs), kBiasBefore));
    biases.v = upload(be, BufType::kF32, std::vector<float>(size_t(s.nkv * s.hs), kBiasBefore));
  }
  const SrKey key{3, 0, 0};
  be.attention_forward(a.out, a.saved, a.q, a.k, a.v, s, recipe, key);
  be.attention_backward(a.dq, a.dk, a.dv, biases, a.dout, a.q, a.k, a.v, a.out, a.saved, s, recipe,
                        key);
  EXPECT_EQ(be.take_error(), "");
  Backward r{download(be, a.dq), download(be, a.dk), download(be, a.dv), {}, {}, {}};
  if (with_biases) {
    r.bq = download(be, biases.q);
    r.bk = download(be, biases.k);
    r.bv = download(be, biases.v);
  }
  return r;
}

// Each column of `bias` is kBiasBefore plus the sum of that column of grad [rows, width], within
// float32 rounding of sums of a few hundred terms.
void expect_column_sums(const std::vector<float>& bias, const std::vector<float>& grad,
                        int64_t width, const char* what) {
  const int64_t rows = int64_t(grad.size()) / width;
  ASSERT_EQ(int64_t(bias.size()), width) << what;
  for (int64_t c = 0; c < width; ++c) {
    double sum = kBiasBefore, magnitude = kBiasBefore;
    for (int64_t r = 0; r < rows; ++r) {
      sum += grad[size_t(r * width + c)];
      magnitude += std::fabs(grad[size_t(r * width + c)]);
    }
    ASSERT_NEAR(bias[size_t(c)], sum, 1e-5 * magnitude) << what << " column " << c;
  }
}

TEST(AttentionBiasSums, AreTheColumnSumsOfTheGradientsItWrites) {
  SKIP_WITHOUT_GPU();
  // GPT-2's heads over whole tiles, heads of 32 over a last tile cut short, grouped-query heads
  // of 128; heads of 96, which only the CUDA-core kernels take (the backend sums dq, dk and dv
  // after them).
  for (const AttnShape s : {AttnShape{2, 192, 4, 4, 64}, AttnShape{3, 100, 2, 2, 32},
                            AttnShape{2, 96, 4, 2, 128}, AttnShape{2, 64, 2, 2, 96}}) {
    for (const char* name : {"bf16", "mxfp6", "mxfp4"}) {
      SCOPED_TRACE(testing::Message() << name << " t " << s.t << " hs " << s.hs);
      bool ok = false;
      const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
      if (!ok) return;
      ASSERT_TRUE(be->attention_sums_qkv_biases(s));
      const Recipe recipe = *recipe_preset(name);
      const Backward with = attend(*be, s, recipe, true);
      expect_column_sums(with.bq, with.dq, s.nh * s.hs, "q");
      expect_column_sums(with.bk, with.dk, s.nkv * s.hs, "k");
      expect_column_sums(with.bv, with.dv, s.nkv * s.hs, "v");
      // The sums leave the gradients as they were, and repeat bit for bit.
      const Backward without = attend(*be, s, recipe, false);
      EXPECT_EQ(with.dq, without.dq);
      EXPECT_EQ(with.dk, without.dk);
      EXPECT_EQ(with.dv, without.dv);
      const Backward again = attend(*be, s, recipe, true);
      EXPECT_EQ(again.bq, with.bq);
      EXPECT_EQ(again.bk, with.bk);
      EXPECT_EQ(again.bv, with.bv);
    }
  }
}

TEST(AttentionBiasSums, FloatActivationsLeaveThemToTheProducts) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kF32, &ok);
  if (!ok) return;
  EXPECT_FALSE(be->attention_sums_qkv_biases(AttnShape{2, 128, 4, 4, 64}));
}

}  // namespace
}  // namespace mx::nn
