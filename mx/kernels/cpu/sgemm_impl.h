// The register tile of the FP32 matrix product (sgemm_kernels.h), written once and compiled per
// instruction set: the including file defines MX_CPU_ISA and MX_CPU_SGEMM_FN.
#include <algorithm>
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

// Sixteen rows of W are read sixteen deep and transposed in registers, so that each vector
// holds one depth p of sixteen columns of C; the last depths under sixteen the same way, read
// through a mask.
// Columns past `cols` reuse W's last row and are never stored.
template <int kRows>
void few_rows_of(const float* a, int64_t a_row, int64_t a_col, const float* w, int64_t ldw,
                 int cols, int64_t k, float* c, int64_t ldc, bool load_c) {
  F32x16 acc[kRows];
  const PartMask c_lanes = part_mask(cols);
  for (int r = 0; r < kRows; ++r) {
    acc[r] = load_c ? load_f32_part(c + r * ldc, c_lanes) : splat(0.0f);
  }
  const float* row[16];
  for (int j = 0; j < 16; ++j) row[j] = w + std::min(j, cols - 1) * ldw;
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    F32x16 t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) t[j] = load_f32(row[j] + p);
    transpose16(t);
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) {
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        acc[r] = fused_mul_add(splat(a[r * a_row + (p + q) * a_col]), t[q], acc[r]);
      }
    }
  }
  if (p < k) {
    // The last depths under sixteen: each row's part read masked (zeros past k), transposed as
    // above, and only the depths that exist added, in order.
    const int depths = int(k - p);
    const PartMask mask = part_mask(depths);
    F32x16 t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) t[j] = load_f32_part(row[j] + p, mask);
    transpose16(t);
    for (int q = 0; q < depths; ++q) {
#pragma GCC unroll 8
      for (int r = 0; r < kRows; ++r) {
        acc[r] = fused_mul_add(splat(a[r * a_row + (p + q) * a_col]), t[q], acc[r]);
      }
    }
  }
  for (int r = 0; r < kRows; ++r) store_f32_part(c + r * ldc, acc[r], c_lanes);
}

template <int... kRows>
void few_rows_dispatch(std::integer_sequence<int, kRows...>, int rows, const float* a,
                       int64_t a_row, int64_t a_col, const float* w, int64_t ldw, int cols,
                       int64_t k, float* c, int64_t ldc, bool load_c) {
  ((rows == kRows + 1 ? few_rows_of<kRows + 1>(a, a_row, a_col, w, ldw, cols, k, c, ldc, load_c)
                      : void()),
   ...);
}

void few_rows(int rows, const float* a, int64_t a_row, int64_t a_col, const float* w, int64_t ldw,
              int cols, int64_t k, float* c, int64_t ldc, bool load_c) {
  few_rows_dispatch(std::make_integer_sequence<int, kSgemmFewRows>{}, rows, a, a_row, a_col, w, ldw,
                    cols, k, c, ldc, load_c);
}

// Each depth p broadcasts A's value and adds it times the cols (up to 64) values of B's row p, in
// kVecs = ceil(cols / 16) accumulators a row: the chains of tile(), with B read where it lies
// instead of packed, and up to four independent chains for a decoding step's single row to
// overlap. A head narrower than 64 (P V at head size 8 or 16) runs only the vectors it fills.
template <int kRows, int kVecs>
void few_rows_against_b(const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t ldb,
                        int cols, int64_t k, float* c, int64_t ldc, bool load_c) {
  // The last vector covers the cols left after the full ones: all 16 lanes or a part of them.
  const int last = cols - 16 * (kVecs - 1);
  const PartMask mask = part_mask(last);
  const auto load = [&](const float* src, int v) {
    return v < kVecs - 1 || last == 16 ? load_f32(src) : load_f32_part(src, mask);
  };
  F32x16 acc[kRows][kVecs];
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVecs; ++v) {
      acc[r][v] = load_c ? load(c + r * ldc + 16 * v, v) : splat(0.0f);
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b + p * ldb;
    F32x16 row[kVecs];
#pragma GCC unroll 4
    for (int v = 0; v < kVecs; ++v) row[v] = load(bp + 16 * v, v);
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const F32x16 s = splat(a[r * a_row + p * a_col]);
#pragma GCC unroll 4
      for (int v = 0; v < kVecs; ++v) acc[r][v] = fused_mul_add(s, row[v], acc[r][v]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    for (int v = 0; v < kVecs; ++v) {
      float* cv = c + r * ldc + 16 * v;
      if (v < kVecs - 1 || last == 16) {
        store_f32(cv, acc[r][v]);
      } else {
        store_f32_part(cv, acc[r][v], mask);
      }
    }
  }
}

template <int kRows, int... kVecs>
void few_rows_of_b_widths(std::integer_sequence<int, kVecs...>, int vecs, const float* a,
                          int64_t a_row, int64_t a_col, const float* b, int64_t ldb, int cols,
                          int64_t k, float* c, int64_t ldc, bool load_c) {
  ((vecs == kVecs + 1
        ? few_rows_against_b<kRows, kVecs + 1>(a, a_row, a_col, b, ldb, cols, k, c, ldc, load_c)
        : void()),
   ...);
}

template <int... kRows>
void few_rows_of_b_dispatch(std::integer_sequence<int, kRows...>, int rows, const float* a,
                            int64_t a_row, int64_t a_col, const float* b, int64_t ldb, int cols,
                            int64_t k, float* c, int64_t ldc, bool load_c) {
  const int vecs = (cols + 15) / 16;
  ((rows == kRows + 1
        ? few_rows_of_b_widths<kRows + 1>(std::make_integer_sequence<int, kSgemmColsOfB / 16>{},
                                          vecs, a, a_row, a_col, b, ldb, cols, k, c, ldc, load_c)
        : void()),
   ...);
}

void few_rows_of_b(int rows, const float* a, int64_t a_row, int64_t a_col, const float* b,
                   int64_t ldb, int cols, int64_t k, float* c, int64_t ldc, bool load_c) {
  few_rows_of_b_dispatch(std::make_integer_sequence<int, kSgemmFewRows>{}, rows, a, a_row, a_col, b,
                         ldb, cols, k, c, ldc, load_c);
}

}  // namespace
}  // namespace MX_CPU_ISA

SgemmKernels MX_CPU_SGEMM_FN() {
  return {MX_CPU_ISA::kMr, MX_CPU_ISA::tile, MX_CPU_ISA::few_rows, MX_CPU_ISA::few_rows_of_b};
}

}  // namespace mx::cpu::detail
