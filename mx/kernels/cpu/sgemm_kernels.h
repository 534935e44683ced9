// The register tiles behind mx/kernels/cpu/sgemm.h, one set per instruction set. Internal.
#pragma once

#include <cstdint>

namespace mx::cpu::detail {

// Columns of C per tile: two sixteen-lane vectors.
constexpr int kSgemmCols = 32;

// C[rows, 32] (row stride ldc) = (load_c ? C : 0) + A B over depth kc, where A is packed
// [kc][mr] (rows past `rows` ignored) and B [kc][32]. Each element of C is one chain of fused
// multiply-adds in depth order, so the bits do not depend on the tile or the instruction set.
// At most this many rows of C go through few_rows().
constexpr int kSgemmFewRows = 8;

// C[rows, cols] (rows <= kSgemmFewRows, cols <= 16) = (load_c ? C : 0) + A B over depth k,
// unpacked: A(i, p) = a[i * a_row + p * a_col], and B(p, j) = w[j * ldw + p], the rows of a
// weight matrix W as in x W^T. The same chains as tile(), so the same bits.
using SgemmFewRows = void (*)(int rows, const float* a, int64_t a_row, int64_t a_col,
                              const float* w, int64_t ldw, int cols, int64_t k, float* c,
                              int64_t ldc, bool load_c);

// The same with B stored by its own rows, B(p, j) = b[p * ldb + j] (V in attention's P V), and
// cols <= kSgemmColsOfB: each step of the depth reads that many consecutive values of a row of B.
constexpr int kSgemmColsOfB = 64;
using SgemmFewRowsOfB = void (*)(int rows, const float* a, int64_t a_row, int64_t a_col,
                                 const float* b, int64_t ldb, int cols, int64_t k, float* c,
                                 int64_t ldc, bool load_c);

struct SgemmKernels {
  int mr;  // rows of C per tile (at most), and the row stride of packed A
  void (*tile)(int rows, const float* a, const float* b, int64_t kc, float* c, int64_t ldc,
               bool load_c);
  SgemmFewRows few_rows;
  SgemmFewRowsOfB few_rows_of_b;
};

SgemmKernels sgemm_kernels_scalar();
SgemmKernels sgemm_kernels_avx2();
SgemmKernels sgemm_kernels_avx512();

}  // namespace mx::cpu::detail
