// The register tile of the FP64 product (dgemm_kernels.h), written once and compiled per
// instruction set: the including file defines MX_CPU_ISA and MX_CPU_DGEMM_FN. The loops are
// plain C++ for the compiler to vectorize; std::fma keeps each product's single rounding on
// every target (one instruction where the target has FMA, a library call where it does not).
#include <cmath>
#include <utility>

#include "mx/kernels/cpu/dgemm_kernels.h"

namespace mx::cpu::detail {
namespace MX_CPU_ISA {
namespace {

template <int kRows>
void full_tile(const double* a, int64_t lda, const double* b, int64_t ldb, int64_t k, double* c,
               int64_t ldc) {
  double acc[kRows][kDgemmCols];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kDgemmCols; ++j) acc[r][j] = c[r * ldc + j];
  }
  for (int64_t p = 0; p < k; ++p) {
    const double* bp = b + p * ldb;
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const double s = a[r * lda + p];
#pragma GCC unroll 16
      for (int j = 0; j < kDgemmCols; ++j) acc[r][j] = std::fma(s, bp[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
#pragma GCC unroll 16
    for (int j = 0; j < kDgemmCols; ++j) c[r * ldc + j] = acc[r][j];
  }
}

void edge_tile(int rows, int cols, const double* a, int64_t lda, const double* b, int64_t ldb,
               int64_t k, double* c, int64_t ldc) {
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      double acc = c[r * ldc + j];
      for (int64_t p = 0; p < k; ++p) acc = std::fma(a[r * lda + p], b[p * ldb + j], acc);
      c[r * ldc + j] = acc;
    }
  }
}

template <int... kRows>
void full_tile_of(std::integer_sequence<int, kRows...>, int rows, const double* a, int64_t lda,
                  const double* b, int64_t ldb, int64_t k, double* c, int64_t ldc) {
  ((rows == kRows + 1 ? full_tile<kRows + 1>(a, lda, b, ldb, k, c, ldc) : void()), ...);
}

void tile(int rows, int cols, const double* a, int64_t lda, const double* b, int64_t ldb, int64_t k,
          double* c, int64_t ldc) {
  if (cols < kDgemmCols) return edge_tile(rows, cols, a, lda, b, ldb, k, c, ldc);
  full_tile_of(std::make_integer_sequence<int, kDgemmRows>{}, rows, a, lda, b, ldb, k, c, ldc);
}

}  // namespace
}  // namespace MX_CPU_ISA

DgemmTile MX_CPU_DGEMM_FN() {
  return &MX_CPU_ISA::tile;
}

}  // namespace mx::cpu::detail
