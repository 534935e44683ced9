// The kernels' stochastic dither (codec.cuh's dither_at), which takes the first window's key
// from the spec instead of hashing it for each value, against the reference's
// (stochastic_dither, mx/core/rounding.h) on both sides of every window boundary it meets. The
// tensors the GPU tests cast lie in the first window, so only this test reaches the others.
// Runs on the host: no GPU needed.
#include <gtest/gtest.h>

#include <cstdint>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/codec.cuh"

namespace mx::cuda {
namespace {

TEST(CudaCodec, DithersWithTheFirstWindowsKeyEqualTheReferenceInEveryWindow) {
  // A window holds 2^32 pairs: indices [w * 2^33, (w + 1) * 2^33).
  constexpr int64_t kWindow = int64_t{1} << 33;
  for (const uint64_t seed : {uint64_t{0}, uint64_t{5}, ~uint64_t{0}}) {
    const uint64_t key = stochastic_stream_key(seed);
    const uint32_t window0_key = stochastic_window_key(key, 0);
    for (const int64_t window : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{1000}}) {
      for (const int64_t offset : {int64_t{-3}, int64_t{-2}, int64_t{-1}, int64_t{0}, int64_t{1},
                                   int64_t{2}, int64_t{3}, int64_t{12345}}) {
        const int64_t index = window * kWindow + offset;
        if (index < 0) continue;
        SCOPED_TRACE(::testing::Message() << "seed " << seed << ", index " << index);
        EXPECT_EQ(dither_at(key, window0_key, index), stochastic_dither(key, uint64_t(index)));
      }
    }
  }
}

}  // namespace
}  // namespace mx::cuda
