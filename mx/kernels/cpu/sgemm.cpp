#include "mx/kernels/cpu/sgemm.h"

#include <algorithm>
#include <vector>

#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/sgemm_kernels.h"

namespace mx::cpu {
namespace {

using detail::kSgemmCols;
using detail::SgemmKernels;

// C is walked in slices of kNc columns and kKc of depth. A slice of B (kKc x kNc, 2 MB) is packed
// once and shared by the threads, which take blocks of rows: each packs its block of A (at most
// kMc x kKc, in the L2 cache) and runs every register tile of the block against the slice, one
// tile-wide column of B (32 KB, in the L1 cache) at a time.
constexpr int64_t kMc = 192;
constexpr int64_t kNc = 2048;
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
// = src[r * r_stride + p * p_stride]. The loops run along the unit stride where there is one.
void pack(float* dst, const float* src, int64_t rows, int64_t width, int64_t depth,
          int64_t r_stride, int64_t p_stride) {
  if (rows < width) {
    for (int64_t p = 0; p < depth; ++p) std::fill_n(dst + p * width + rows, width - rows, 0.0f);
  }
  if (r_stride == 1) {
    for (int64_t p = 0; p < depth; ++p) std::copy_n(src + p * p_stride, rows, dst + p * width);
  } else if (p_stride == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* s = src + r * r_stride;
      for (int64_t p = 0; p < depth; ++p) dst[p * width + r] = s[p];
    }
  } else {
    for (int64_t p = 0; p < depth; ++p) {
      for (int64_t r = 0; r < rows; ++r) dst[p * width + r] = src[r * r_stride + p * p_stride];
    }
  }
}

struct Slice {
  int64_t j0, cols, p0, kc;
  bool load_c;
  const float* packed_b;  // [col tiles][kc][32]
};

struct Problem {
  float* c;
  int64_t ldc;
  StridedMatrix a, b;
  int64_t m, k, n;
  bool symmetric;
  SgemmKernels kernels;
};

// Rows [i0, i0 + rows) of C against one slice of B.
void run_rows(const Problem& pr, const Slice& s, int64_t i0, int64_t rows,
              std::vector<float>& packed_a) {
  const int mr = pr.kernels.mr;
  const int64_t row_tiles = (rows + mr - 1) / mr;
  const int64_t col_tiles = (s.cols + kSgemmCols - 1) / kSgemmCols;
  packed_a.resize(size_t(row_tiles * mr * s.kc));
  for (int64_t t = 0; t < row_tiles; ++t) {
    pack(packed_a.data() + t * mr * s.kc,
         pr.a.data + (i0 + t * mr) * pr.a.row_stride + s.p0 * pr.a.col_stride,
         std::min<int64_t>(mr, rows - t * mr), mr, s.kc, pr.a.row_stride, pr.a.col_stride);
  }
  float edge[64 * kSgemmCols];
  for (int64_t u = 0; u < col_tiles; ++u) {
    const int64_t j = s.j0 + u * kSgemmCols;
    const int64_t width = std::min<int64_t>(kSgemmCols, s.cols - u * kSgemmCols);
    const float* b = s.packed_b + u * kSgemmCols * s.kc;
    for (int64_t t = 0; t < row_tiles; ++t) {
      const int64_t i = i0 + t * mr;
      // Under `symmetric`, tiles wholly below the diagonal are left to the copy.
      if (pr.symmetric && j + kSgemmCols <= i) continue;
      const int height = int(std::min<int64_t>(mr, rows - t * mr));
      const float* a = packed_a.data() + t * mr * s.kc;
      float* c = pr.c + i * pr.ldc + j;
      if (width == kSgemmCols) {
        pr.kernels.tile(height, a, b, s.kc, c, pr.ldc, s.load_c);
        continue;
      }
      // A tile past C's last column runs on a copy, so that nothing beyond C is touched.
      for (int r = 0; r < height && s.load_c; ++r) {
        std::copy_n(c + r * pr.ldc, width, edge + r * kSgemmCols);
      }
      pr.kernels.tile(height, a, b, s.kc, edge, kSgemmCols, s.load_c);
      for (int r = 0; r < height; ++r) std::copy_n(edge + r * kSgemmCols, width, c + r * pr.ldc);
    }
  }
}

// Row blocks small enough that every thread gets several (the blocking never changes a bit).
int64_t row_block(int64_t m, int threads, int mr) {
  const int64_t want = (m + 4 * threads - 1) / (4 * threads);
  return std::clamp<int64_t>((want + mr - 1) / mr * mr, mr, kMc);
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
                   options.symmetric,
                   kernels_for(options.target.value_or(best_target()))};
  // Products too small to share run on the calling thread. A product of a few rows is bound by
  // reading B, not by its multiply-adds, so it is shared once B holds 256 KiB: counted by
  // multiply-adds alone, a decoding step's 768 x 768 weights (GPT-2 124M) would run on one.
  const double multiply_adds = double(m) * double(n) * double(k);
  const double b_floats = double(n) * double(k);
  const int threads = multiply_adds < double(1 << 20) && b_floats < double(1 << 16)
                          ? 1
                          : resolve_thread_count(options.threads);
  // A few rows against B held as the rows of W (B(p, j) = W[j][p], as in x W^T) or by its own
  // rows (as V in P V): packing would copy all of B at every call, most of the work when M is
  // one decoding step's row.
  if (m <= detail::kSgemmFewRows && (b.row_stride == 1 || b.col_stride == 1) &&
      !options.symmetric) {
    const bool rows_of_w = b.row_stride == 1;
    const int64_t width = rows_of_w ? 16 : detail::kSgemmColsOfB;
    parallel_for((n + width - 1) / width, 1, threads, [&](int64_t begin, int64_t end) {
      for (int64_t u = begin; u < end; ++u) {
        const int64_t j = u * width;
        const int cols = int(std::min<int64_t>(width, n - j));
        if (rows_of_w) {
          pr.kernels.few_rows(int(m), a.data, a.row_stride, a.col_stride, b.data + j * b.col_stride,
                              b.col_stride, cols, k, c + j, ldc, options.accumulate);
        } else {
          pr.kernels.few_rows_of_b(int(m), a.data, a.row_stride, a.col_stride, b.data + j,
                                   b.row_stride, cols, k, c + j, ldc, options.accumulate);
        }
      }
    });
    return;
  }
  const int64_t mc = row_block(m, threads, pr.kernels.mr);
  std::vector<int64_t> starts;
  for (int64_t i0 = 0; i0 < m; i0 += mc) starts.push_back(i0);
  if (options.symmetric) {
    // Row blocks lower down have less of the upper triangle: pair the first with the last, so
    // that contiguous shares of the list hold about the same work.
    std::vector<int64_t> paired;
    for (size_t lo = 0, hi = starts.size(); lo < hi;) {
      paired.push_back(starts[lo++]);
      if (lo < hi) paired.push_back(starts[--hi]);
    }
    starts = paired;
  }
  std::vector<float> packed_b;
  for (int64_t j0 = 0; j0 < n; j0 += kNc) {
    const int64_t cols = std::min(kNc, n - j0);
    const int64_t col_tiles = (cols + kSgemmCols - 1) / kSgemmCols;
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      packed_b.resize(size_t(col_tiles * kSgemmCols * kc));
      parallel_for(col_tiles, 1, threads, [&](int64_t begin, int64_t end) {
        for (int64_t u = begin; u < end; ++u) {
          const int64_t j = j0 + u * kSgemmCols;
          pack(packed_b.data() + u * kSgemmCols * kc, b.data + j * b.col_stride + p0 * b.row_stride,
               std::min<int64_t>(kSgemmCols, cols - u * kSgemmCols), kSgemmCols, kc, b.col_stride,
               b.row_stride);
        }
      });
      const Slice s{j0, cols, p0, kc, options.accumulate || p0 > 0, packed_b.data()};
      parallel_for(int64_t(starts.size()), 1, threads, [&](int64_t begin, int64_t end) {
        std::vector<float> packed_a;
        for (int64_t x = begin; x < end; ++x) {
          const int64_t i0 = starts[size_t(x)];
          // Under `symmetric`, a block wholly below the diagonal is left to the copy.
          if (options.symmetric && i0 >= j0 + cols) continue;
          run_rows(pr, s, i0, std::min(mc, m - i0), packed_a);
        }
      });
    }
  }
  if (options.symmetric) {
    for (int64_t i = 1; i < m; ++i) {
      for (int64_t j = 0; j < i; ++j) c[i * ldc + j] = c[j * ldc + i];
    }
  }
}

}  // namespace mx::cpu
