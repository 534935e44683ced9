// The register tile behind mx/kernels/cpu/dgemm.h, one per instruction set. Internal.
#pragma once

#include <cstdint>

namespace mx::cpu::detail {

constexpr int kDgemmRows = 8;   // rows of C per tile, at most
constexpr int kDgemmCols = 16;  // columns of C per tile, at most

// C[rows, cols] += A[rows, k] B[k, cols], each element one chain of fused multiply-adds in
// increasing k from its old value.
using DgemmTile = void (*)(int rows, int cols, const double* a, int64_t lda, const double* b,
                           int64_t ldb, int64_t k, double* c, int64_t ldc);

DgemmTile dgemm_tile_scalar();
DgemmTile dgemm_tile_avx2();
DgemmTile dgemm_tile_avx512();

}  // namespace mx::cpu::detail
