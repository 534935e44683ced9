// The in-tile casts' block scale under the floor rule, as selects (finish_floor_scale), against
// the general form (finish_scale) at every float32 bit pattern a block's largest magnitude can
// have: zero, subnormals, normals, infinity and NaNs, for each float element format.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>

#include "mx/core/format.h"
#include "mx/core/quant_spec.h"
#include "mx/kernels/cuda/device_common.cuh"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::cuda {
namespace {

// Counts the amax patterns (0 .. 0x7FFFFFFF, a grid-stride walk) where the two forms differ in
// the scale byte, the NaN flag or the bits of 1/scale.
__global__ void count_scale_mismatches(const __grid_constant__ DevSpec s,
                                       unsigned long long* mismatches) {
  unsigned long long local = 0;
  const uint64_t stride = uint64_t(gridDim.x) * blockDim.x;
  for (uint64_t a = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; a <= 0x7FFFFFFFu;
       a += stride) {
    const uint32_t amax = uint32_t(a);
    BlockState general{}, selects{};
    general.nan_block = selects.nan_block = amax >= 0x7F800000u;
    finish_scale(s, amax, general);
    finish_floor_scale(s, amax, selects);
    if (general.scale != selects.scale || general.nan_block != selects.nan_block ||
        __float_as_uint(general.inv_scale) != __float_as_uint(selects.inv_scale)) {
      ++local;
    }
  }
  if (local != 0) atomicAdd(mismatches, local);
}

TEST(CudaCodec, FloorScaleAsSelectsMatchesTheGeneralFormAtEveryMagnitude) {
  SKIP_WITHOUT_GPU();
  unsigned long long* mismatches = nullptr;
  ASSERT_EQ(cudaMalloc(&mismatches, sizeof(unsigned long long)), cudaSuccess);
  for (ElementFormat format : {ElementFormat::kE2M1, ElementFormat::kE2M3, ElementFormat::kE3M2,
                               ElementFormat::kE3M0, ElementFormat::kE4M3, ElementFormat::kE5M2}) {
    // The zero block's scale byte: the default, a middle one and the extremes.
    for (int zero_scale : {0, 127, 254, 255}) {
      QuantSpec spec;
      spec.format = format;
      spec.zero_block_scale = uint8_t(zero_scale);
      ASSERT_EQ(cudaMemset(mismatches, 0, sizeof(unsigned long long)), cudaSuccess);
      count_scale_mismatches<<<1024, 256>>>(make_dev_spec(spec), mismatches);
      unsigned long long count = 0;
      ASSERT_EQ(cudaMemcpy(&count, mismatches, sizeof count, cudaMemcpyDeviceToHost), cudaSuccess);
      EXPECT_EQ(count, 0u) << traits(format).mx_name << ", zero-block scale " << zero_scale;
    }
  }
  cudaFree(mismatches);
}

}  // namespace
}  // namespace mx::cuda
