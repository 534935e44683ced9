#include "mx/kernels/cpu/dgemm.h"

#include <algorithm>

#include "mx/kernels/cpu/dgemm_kernels.h"

namespace mx::cpu {
namespace {

using detail::DgemmTile;
using detail::kDgemmCols;
using detail::kDgemmRows;

// Depth per pass over a column strip: 256 rows of a 16-column strip of B (32 KB) stay in the L1
// and L2 caches while every row tile runs against them.
constexpr int64_t kDepth = 256;

DgemmTile tile_for(SimdTarget target) {
  switch (target) {
    case SimdTarget::kScalar:
      return detail::dgemm_tile_scalar();
    case SimdTarget::kAvx2:
      return detail::dgemm_tile_avx2();
    case SimdTarget::kAvx512:
    case SimdTarget::kAvx512Vnni:
      return detail::dgemm_tile_avx512();
  }
  return detail::dgemm_tile_scalar();
}

}  // namespace

void dgemm_accumulate(double* c, int64_t ldc, const double* a, int64_t lda, const double* b,
                      int64_t ldb, int64_t m, int64_t k, int64_t n,
                      std::optional<SimdTarget> target) {
  if (m <= 0 || n <= 0 || k <= 0) return;
  const DgemmTile tile = tile_for(target.value_or(best_target()));
  for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
    const int64_t depth = std::min(kDepth, k - p0);
    for (int64_t j = 0; j < n; j += kDgemmCols) {
      const int cols = int(std::min<int64_t>(kDgemmCols, n - j));
      for (int64_t i = 0; i < m; i += kDgemmRows) {
        tile(int(std::min<int64_t>(kDgemmRows, m - i)), cols, a + i * lda + p0, lda,
             b + p0 * ldb + j, ldb, depth, c + i * ldc + j, ldc);
      }
    }
  }
}

}  // namespace mx::cpu
