// The one matmul entry point of the CPU backend. Every matrix product of the model goes
// through here, and here the recipe is applied: each operand is cast (bf16 or MX fake-quantize)
// along the reduction axis of the GEMM that uses it, from the FP32 values (see recipe.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/nn/recipe.h"

namespace mx::nn::cpu {

// Scratch buffers reused across calls, so the hot loop does not allocate.
struct MatmulScratch {
  std::vector<float> a, b;
};

// Casts a row-major tensor of `shape` for blocks along `axis`, the stream mixed into the spec's
// stochastic-rounding seed. Returns `src` untouched when the cast is none, else a pointer into
// `scratch`. A spec that this shape cannot take (blocks that would be mostly padding) sets
// `*error` (when it is still empty), naming `role`, and returns `src`. `threads` (0: all) share
// the cast; the bits do not depend on them, nor do the products' below.
const float* cast_tensor(const float* src, std::span<const int64_t> shape, int axis,
                         const OperandCast& cast, std::string_view role, uint64_t stream,
                         std::vector<float>& scratch, std::string* error, int threads);

// cast_tensor of a [rows, cols] matrix (axis 1: blocks along cols, 0: along rows).
const float* cast_operand(const float* src, int64_t rows, int64_t cols, int axis,
                          const OperandCast& cast, std::string_view role, uint64_t stream,
                          std::vector<float>& scratch, std::string* error, int threads);

// y[M,N] = x[M,K] W[N,K]^T (+ bias[N]). "" or the reason a cast failed (y is then unspecified).
// y[M, N] += bias[N], row by row.
void add_bias(float* y, const float* bias, int64_t m, int64_t n);
// sums[N] += the column sums of y[M, N], row by row (a bias gradient).
void add_column_sums(float* sums, const float* y, int64_t m, int64_t n);

std::string matmul_forward(float* y, const float* x, const float* w, const float* bias, int64_t m,
                           int64_t k, int64_t n, const Recipe& recipe, uint64_t stream,
                           MatmulScratch& scratch, int threads);

// dx[M,K] += dy W;  dw[N,K] += dy^T x;  dbias[N] += column sums of dy. Any output may be null.
std::string matmul_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                            const float* w, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                            uint64_t stream, MatmulScratch& scratch, int threads);

}  // namespace mx::nn::cpu
