#include "mx/kernels/cpu/sgemm.h"

#include <algorithm>
#include <vector>

#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/sgemm_kernels.h"

namespace mx::cpu {
namespace {

using detail::kSgemmCols;
using detail::SgemmKernels;

// A task is one block of C, kMc x kNc, walked in depth slices of kKc: a slice of A (kMc x kKc)
// and of B (kKc x kNc) are packed once and stay in the L2 cache while every register tile of
// the block reads them.
constexpr int64_t kMc = 96;  // a multiple of every target's tile rows (12, 4, 3)
constexpr int64_t kNc = 256;
constexpr int64_t kKc = 256;

SgemmKernels kernels_for(SimdTarget target) {
  switch (target) {
    case SimdTarget::kScalar:
      return detail::sgemm_kernels_scalar();
    case SimdTarget::kAvx2:
      return detail::sgemm_kernels_avx2();
    case SimdTarget::kAvx512:
    case SimdTarget::kAvx512Vnni:
      return detail::sgemm_kernels_avx512();
  }
  return detail::sgemm_kernels_scalar();
}

// dst[p * width + r] = src(r, p) for r < rows, p < depth, and 0 for rows <= r < width; src(r, p)
// = src[r * r_stride + p * p_stride]. The loop runs along whichever stride is the shorter.
void pack(float* dst, const float* src, int64_t rows, int64_t width, int64_t depth,
          int64_t r_stride, int64_t p_stride) {
  if (rows < width) {
    for (int64_t p = 0; p < depth; ++p) std::fill_n(dst + p * width + rows, width - rows, 0.0f);
  }
  if (p_stride <= r_stride) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + r * r_stride;
      for (int64_t p = 0; p < depth; ++p) dst[p * width + r] = s[p * p_stride];
    }
  } else {
    for (int64_t p = 0; p < depth; ++p) {
      const float* s = src + p * p_stride;
      for (int64_t r = 0; r < rows; ++r) dst[p * width + r] = s[r * r_stride];
    }
  }
}

struct Problem {
  float* c;
  int64_t ldc;
  StridedMatrix a, b;
  int64_t m, k, n;
  bool accumulate;
  SgemmKernels kernels;
};

// The block of C at rows [i0, i0 + kMc), columns [j0, j0 + kNc).
void run_block(const Problem& pr, int64_t i0, int64_t j0, std::vector<float>& packed_a,
               std::vector<float>& packed_b) {
  const int mr = pr.kernels.mr;
  const int64_t rows = std::min(kMc, pr.m - i0), cols = std::min(kNc, pr.n - j0);
  const int64_t row_tiles = (rows + mr - 1) / mr, col_tiles = (cols + kSgemmCols - 1) / kSgemmCols;
  packed_a.resize(size_t(row_tiles * mr * kKc));
  packed_b.resize(size_t(col_tiles * kSgemmCols * kKc));
  float edge[kMc * kSgemmCols];
  for (int64_t p0 = 0; p0 < pr.k; p0 += kKc) {
    const int64_t kc = std::min(kKc, pr.k - p0);
    const bool load_c = pr.accumulate || p0 > 0;
    for (int64_t t = 0; t < row_tiles; ++t) {
      const int64_t i = i0 + t * mr;
      pack(packed_a.data() + t * mr * kc, pr.a.data + i * pr.a.row_stride + p0 * pr.a.col_stride,
           std::min<int64_t>(mr, rows - t * mr), mr, kc, pr.a.row_stride, pr.a.col_stride);
    }
    for (int64_t t = 0; t < col_tiles; ++t) {
      const int64_t j = j0 + t * kSgemmCols;
      pack(packed_b.data() + t * kSgemmCols * kc,
           pr.b.data + j * pr.b.col_stride + p0 * pr.b.row_stride,
           std::min<int64_t>(kSgemmCols, cols - t * kSgemmCols), kSgemmCols, kc, pr.b.col_stride,
           pr.b.row_stride);
    }
    for (int64_t u = 0; u < col_tiles; ++u) {
      const int64_t j = j0 + u * kSgemmCols,
                    width = std::min<int64_t>(kSgemmCols, cols - u * kSgemmCols);
      const float* b = packed_b.data() + u * kSgemmCols * kc;
      for (int64_t t = 0; t < row_tiles; ++t) {
        const int64_t i = i0 + t * mr;
        const int height = int(std::min<int64_t>(mr, rows - t * mr));
        const float* a = packed_a.data() + t * mr * kc;
        float* c = pr.c + i * pr.ldc + j;
        if (width == kSgemmCols) {
          pr.kernels.tile(height, a, b, kc, c, pr.ldc, load_c);
          continue;
        }
        // A tile past C's last column runs on a copy, so that nothing beyond C is touched.
        for (int r = 0; r < height && load_c; ++r) {
          std::copy_n(c + r * pr.ldc, width, edge + r * kSgemmCols);
        }
        pr.kernels.tile(height, a, b, kc, edge, kSgemmCols, load_c);
        for (int r = 0; r < height; ++r) std::copy_n(edge + r * kSgemmCols, width, c + r * pr.ldc);
      }
    }
  }
}

}  // namespace

void sgemm(float* c, int64_t ldc, StridedMatrix a, StridedMatrix b, int64_t m, int64_t k, int64_t n,
           const SgemmOptions& options) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!options.accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, 0.0f);
    }
    return;
  }
  const Problem pr{c,
                   ldc,
                   a,
                   b,
                   m,
                   k,
                   n,
                   options.accumulate,
                   kernels_for(options.target.value_or(best_target()))};
  std::vector<std::pair<int64_t, int64_t>> blocks;
  for (int64_t i0 = 0; i0 < m; i0 += kMc) {
    for (int64_t j0 = 0; j0 < n; j0 += kNc) {
      // Under `symmetric`, blocks wholly below the diagonal are left to the copy.
      if (!options.symmetric || j0 + kNc > i0) blocks.emplace_back(i0, j0);
    }
  }
  const int64_t flops_per_block = kMc * kNc * k;
  const int threads =
      flops_per_block * int64_t(blocks.size()) < (int64_t(1) << 21) ? 1 : options.threads;
  parallel_for(int64_t(blocks.size()), 1, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> packed_a, packed_b;
    for (int64_t x = begin; x < end; ++x) {
      run_block(pr, blocks[size_t(x)].first, blocks[size_t(x)].second, packed_a, packed_b);
    }
  });
  if (options.symmetric) {
    for (int64_t i = 1; i < m; ++i) {
      for (int64_t j = 0; j < i; ++j) c[i * ldc + j] = c[j * ldc + i];
    }
  }
}

}  // namespace mx::cpu
