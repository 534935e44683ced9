// Which linear-layer products can take their MX operands as codes and scales, the storage the MX
// matrix products read (mx/kernels/cuda/mx_gemm.h), rather than as the values those codes decode
// to. The CUDA backend's packed products (CudaBackendOptions::packed_products) ask this of every
// product; the answer depends on the recipe's casts and the shape alone.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "mx/nn/recipe.h"

namespace mx::nn {

// An MX cast whose codes reach a product as they are: 1-D blocks of 32, symmetric (no offsets
// to add after the product), not rotated, elements of 4, 6 or 8 bits.
bool cast_reaches_products_packed(const OperandCast& cast);

// Both operands' casts reach the product packed, and every dimension of the product (M, N and
// K) is a positive whole number of blocks of 32: no partial block, no padded rows.
bool product_takes_packed_operands(const OperandCast& a, const OperandCast& b,
                                   std::initializer_list<int64_t> dims);

}  // namespace mx::nn
