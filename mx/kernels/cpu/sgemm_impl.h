// The register tile of the FP32 matrix product (sgemm_kernels.h), written once and compiled per
// instruction set: the including file defines MX_CPU_ISA and MX_CPU_SGEMM_FN.
#include <utility>

#include "mx/kernels/cpu/lanes.h"
#include "mx/kernels/cpu/sgemm_kernels.h"

namespace mx::cpu::detail {
namespace MX_CPU_ISA {
namespace {

// Rows per tile: kMr x 2 accumulators stay in registers (32 zmm on AVX-512; on AVX2 a
// sixteen-lane vector takes two of the 16 ymm).
#if defined(__AVX512F__)
constexpr int kMr = 12;
#elif defined(__AVX2__)
constexpr int kMr = 3;
#else
constexpr int kMr = 4;
#endif

template <int kRows>
void tile_rows(const float* a, const float* b, int64_t kc, float* c, int64_t ldc, bool load_c) {
  F32x16 acc[kRows][2];
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    acc[r][0] = load_c ? load_f32(c + r * ldc) : splat(0.0f);
    acc[r][1] = load_c ? load_f32(c + r * ldc + 16) : splat(0.0f);
  }
  for (int64_t p = 0; p < kc; ++p) {
    const F32x16 b0 = load_f32(b + p * kSgemmCols);
    const F32x16 b1 = load_f32(b + p * kSgemmCols + 16);
    const float* ap = a + p * kMr;
#pragma GCC unroll 16
    for (int r = 0; r < kRows; ++r) {
      const F32x16 s = splat(ap[r]);
      acc[r][0] = fused_mul_add(s, b0, acc[r][0]);
      acc[r][1] = fused_mul_add(s, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < kRows; ++r) {
    store_f32(c + r * ldc, acc[r][0]);
    store_f32(c + r * ldc + 16, acc[r][1]);
  }
}

template <int... kRows>
void tile_dispatch(std::integer_sequence<int, kRows...>, int rows, const float* a, const float* b,
                   int64_t kc, float* c, int64_t ldc, bool load_c) {
  ((rows == kRows + 1 ? tile_rows<kRows + 1>(a, b, kc, c, ldc, load_c) : void()), ...);
}

void tile(int rows, const float* a, const float* b, int64_t kc, float* c, int64_t ldc,
          bool load_c) {
  tile_dispatch(std::make_integer_sequence<int, kMr>{}, rows, a, b, kc, c, ldc, load_c);
}

}  // namespace
}  // namespace MX_CPU_ISA

SgemmKernels MX_CPU_SGEMM_FN() {
  return {MX_CPU_ISA::kMr, MX_CPU_ISA::tile};
}

}  // namespace mx::cpu::detail
