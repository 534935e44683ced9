// The per-instruction-set loops behind mx/kernels/cpu/mx_matmul.h. Internal.
#pragma once

#include <cmath>
#include <cstdint>

#include "mx/core/format.h"

namespace mx::cpu::detail {

// W [N, K] in MX storage with blocks of 32 along K: row n holds blocks n * blocks_per_row ..
// n * blocks_per_row + blocks_per_row - 1, packed one after the other.
struct PackedRows {
  const uint8_t* elements;
  const uint8_t* scales;
  ElementFormat format;
  int64_t blocks_per_row;
};

// y[M, N] = x[M, K] * W^T with x in float32, each row padded with zeros to blocks_per_row * 32
// and each block of 32 in pair order: its even elements 0, 2, .., 30, then its odd ones.
struct ExactMatmulJob {
  PackedRows w;
  const float* scale_values;  // float32 value of each E8M0 byte (0xFF: NaN)
  const float* x;
  int64_t m;
  float* y;
  int64_t n;
};

// The same product with x quantized to MXINT8 (blocks of 32 along K) and laid out by pairs of
// blocks, the last pair completed by a block of zeros when the row has an odd number:
struct FastMatmulJob {
  PackedRows w;
  const float* scale_values;
  int64_t pairs;               // block pairs per row: ceil(blocks_per_row / 2)
  const int8_t* x_codes;       // [M][pairs * 64]
  const float* x_pair_scales;  // [M][pairs * 16]: lanes 0-7 block 2p's, 8-15 block 2p + 1's
                               // scale times 2^(q_w - 6), q_w from quantum_exponent(W's format)
  const int32_t* x_quad_bias;  // [M][pairs * 16]: -128 * the sum of each four codes
  int64_t m;
  float* y;
  int64_t n;
};

struct MatmulKernels {
  void (*exact)(const ExactMatmulJob& job, int64_t first_row, int64_t end_row);
  // W's format must have int8 values (has_int8_values).
  void (*fast)(const FastMatmulJob& job, int64_t first_row, int64_t end_row);
};

MatmulKernels matmul_kernels_scalar();
MatmulKernels matmul_kernels_avx2();
MatmulKernels matmul_kernels_avx512();
MatmulKernels matmul_kernels_avx512vnni();

// Every element value of a format is an integer times 2^q, q this exponent.
inline int quantum_exponent(const FormatTraits& f) {
  return f.is_integer ? f.emin : f.emin - f.man_bits;
}

// True when those integers fit int8 (MXFP4, MXFP6 E2M3, MXINT8 and the 2- and 4-bit design-space
// formats): the fast mode's integer dot products apply.
inline bool has_int8_values(const FormatTraits& f) {
  return !f.has_inf && !f.has_nan && std::ldexp(f.max_normal, -quantum_exponent(f)) <= 127.0;
}

}  // namespace mx::cpu::detail
