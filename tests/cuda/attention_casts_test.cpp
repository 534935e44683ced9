// The CUDA backend's attention under MX recipes keeps the backward's casts of q, k and v from the
// forward (each input read once for both of its casts) when `saved` has room for them. With less
// room (P v_dw only) the backward casts q, k, v and dO itself, one cast at a time: both ways
// give the same output and gradients bit for bit. Skips without a GPU.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/attention_test_support.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

struct Grads {
  std::vector<float> out, dq, dk, dv;
};

// Forward and backward with `saved_floats` of room for what the forward keeps. With
// `change_inputs`, q, k and v take other values between the two, which a training pass never
// does: a backward that read them again would see the change.
Grads attend(Backend& be, const AttnShape& s, const Recipe& recipe, int64_t saved_floats,
             bool change_inputs = false) {
  const AttentionBuffers a = attention_buffers(be, s, saved_floats);
  const SrKey key{7, 1, 0};
  be.attention_forward(a.out, a.saved, a.q, a.k, a.v, s, recipe, key);
  if (change_inputs) {
    for (const auto& [x, seed] : {std::pair{a.q, 11u}, std::pair{a.k, 12u}, std::pair{a.v, 13u}}) {
      const Buf other = upload(be, BufType::kBF16, normal(size_t(x.n), seed));
      be.copy(x, other);
      be.release(other);
    }
  }
  be.attention_backward(a.dq, a.dk, a.dv, {}, a.dout, a.q, a.k, a.v, a.out, a.saved, s, recipe,
                        key);
  EXPECT_EQ(be.take_error(), "");
  return {download(be, a.out), download(be, a.dq), download(be, a.dk), download(be, a.dv)};
}

// Room for the log-sum-exps, then P v_dw ([B, T, nh, hs] in bfloat16) at a 16-byte boundary, and
// none for the casts.
int64_t pv_only_floats(const AttnShape& s) {
  return (s.b * s.nh * s.t + 3) / 4 * 4 + (s.b * s.t * s.nh * s.hs + 1) / 2;
}

TEST(AttentionCasts, CastsKeptByTheForwardGiveTheGradientsOfCastsMadeInTheBackward) {
  SKIP_WITHOUT_GPU();
  // GPT-2's heads, and grouped-query heads of 128 as Llama's.
  for (const AttnShape s : {AttnShape{2, 128, 4, 4, 64}, AttnShape{1, 96, 4, 2, 128}}) {
    for (const char* name : {"mxfp6", "mxfp4", "mxfp8", "mxint8"}) {
      SCOPED_TRACE(testing::Message() << name << " hs " << s.hs << " nkv " << s.nkv);
      bool ok = false;
      const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
      if (!ok) return;
      const Recipe recipe = *recipe_preset(name);
      const int64_t with_casts = be->attn_saved_count(s, recipe);
      const int64_t pv_only = pv_only_floats(s);
      ASSERT_GT(with_casts, pv_only) << "the forward keeps no casts under this recipe";
      const Grads kept = attend(*be, s, recipe, with_casts);
      const Grads recast = attend(*be, s, recipe, pv_only);
      EXPECT_EQ(kept.out, recast.out);
      EXPECT_EQ(kept.dq, recast.dq);
      EXPECT_EQ(kept.dk, recast.dk);
      EXPECT_EQ(kept.dv, recast.dv);
    }
  }
}

TEST(AttentionCasts, TheBackwardReadsTheCastsThatTheForwardKept) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const AttnShape s{2, 128, 4, 4, 64};
  const Recipe recipe = *recipe_preset("mxfp6");
  const int64_t with_casts = be->attn_saved_count(s, recipe);
  const int64_t pv_only = pv_only_floats(s);
  const Grads kept = attend(*be, s, recipe, with_casts);
  const Grads kept_changed = attend(*be, s, recipe, with_casts, /*change_inputs=*/true);
  EXPECT_EQ(kept_changed.dq, kept.dq);
  EXPECT_EQ(kept_changed.dk, kept.dk);
  EXPECT_EQ(kept_changed.dv, kept.dv);
  // Without the kept casts the backward casts q, k and v itself, and sees the change.
  const Grads recast = attend(*be, s, recipe, pv_only);
  const Grads recast_changed = attend(*be, s, recipe, pv_only, /*change_inputs=*/true);
  EXPECT_NE(recast_changed.dq, recast.dq);
}

TEST(AttentionCasts, Bfloat16RecipesKeepNoCasts) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  const std::unique_ptr<Backend> be = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  const AttnShape s{2, 128, 4, 4, 64};
  EXPECT_EQ(be->attn_saved_count(s, *recipe_preset("bf16")), s.b * s.nh * s.t);
}

}  // namespace
}  // namespace mx::nn
