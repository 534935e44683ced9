#include "mx/nn/cpu/matmul.h"

#include "mx/nn/cast_streams.h"

#include "mx/core/half.h"
#include "mx/core/rounding.h"
#include "mx/io/cat.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/block_rotation.h"
#include "mx/nn/cpu/sgemm.h"

namespace mx::nn::cpu {
const float* cast_tensor(const float* src, std::span<const int64_t> shape, int axis,
                         const OperandCast& cast, std::string_view role, uint64_t stream,
                         std::vector<float>& scratch, std::string* error, int threads) {
  int64_t count = 1;
  for (const int64_t d : shape) count *= d;
  switch (cast.kind) {
    case OperandCast::Kind::kNone:
      return src;
    case OperandCast::Kind::kBF16:
      scratch.resize(count);
      for (int64_t i = 0; i < count; ++i) scratch[i] = round_to_bf16(src[i]);
      return scratch.data();
    case OperandCast::Kind::kMx: {
      scratch.resize(count);
      const QuantSpec spec = cast_spec(cast.spec, axis, stream);
      const float* input = src;
      // Kept, so that the training loop does not allocate, and per thread: data-parallel ranks
      // may be threads of one process.
      thread_local std::vector<float> rotated;
      if (cast.is_rotated()) {
        rotated.assign(src, src + count);
        hadamard_rotate_blocks(rotated.data(), shape, axis, spec.block_size);
        input = rotated.data();
      }
      mx::cpu::Options options;
      options.threads = threads;
      if (std::string e = mx::cpu::fake_quantize(input, DType::kF32, shape, spec, DType::kF32,
                                                 scratch.data(), options);
          !e.empty()) {
        if (error->empty()) {
          *error =
              io::cat("recipe role '", role, "' on a ", io::format_shape(shape), " operand: ", e);
        }
        return src;
      }
      if (cast.is_rotated()) hadamard_rotate_blocks(scratch.data(), shape, axis, spec.block_size);
      return scratch.data();
    }
  }
  return src;
}

const float* cast_operand(const float* src, int64_t rows, int64_t cols, int axis,
                          const OperandCast& cast, std::string_view role, uint64_t stream,
                          std::vector<float>& scratch, std::string* error, int threads) {
  const int64_t shape[2] = {rows, cols};
  return cast_tensor(src, shape, axis, cast, role, stream, scratch, error, threads);
}

std::string matmul_forward(float* y, const float* x, const float* w, const float* bias, int64_t m,
                           int64_t k, int64_t n, const Recipe& recipe, uint64_t stream,
                           MatmulScratch& scratch, int threads) {
  std::string error;
  const float* xq =
      cast_operand(x, m, k, 1, recipe.act_fwd, "act_fwd",
                   operand_stream(stream, LinearOperand::kActFwd), scratch.a, &error, threads);
  const float* wq =
      cast_operand(w, n, k, 1, recipe.weight_fwd, "weight_fwd",
                   operand_stream(stream, LinearOperand::kWeightFwd), scratch.b, &error, threads);
  if (!error.empty()) return error;
  sgemm_nt(y, xq, wq, m, k, n, false, threads);
  if (bias != nullptr) add_bias(y, bias, m, n);
  return "";
}

void add_bias(float* y, const float* bias, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) y[i * n + j] += bias[j];
  }
}

std::string matmul_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                            const float* w, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                            uint64_t stream, MatmulScratch& scratch, int threads) {
  std::string error;
  if (dx != nullptr) {
    // dx[M,K] = dy[M,N] W[N,K]: the reduction runs over N (out-features).
    const float* gq =
        cast_operand(dy, m, n, 1, recipe.grad_out_dx, "grad_out_dx",
                     operand_stream(stream, LinearOperand::kGradOutDx), scratch.a, &error, threads);
    const float* wq =
        cast_operand(w, n, k, 0, recipe.weight_dx, "weight_dx",
                     operand_stream(stream, LinearOperand::kWeightDx), scratch.b, &error, threads);
    if (!error.empty()) return error;
    sgemm_nn(dx, gq, wq, m, n, k, true, threads);
  }
  if (dw != nullptr) {
    // dw[N,K] = dy^T[N,M] x[M,K]: the reduction runs over M (tokens).
    const float* gq =
        cast_operand(dy, m, n, 0, recipe.grad_out_dw, "grad_out_dw",
                     operand_stream(stream, LinearOperand::kGradOutDw), scratch.a, &error, threads);
    const float* xq =
        cast_operand(x, m, k, 0, recipe.act_dw, "act_dw",
                     operand_stream(stream, LinearOperand::kActDw), scratch.b, &error, threads);
    if (!error.empty()) return error;
    sgemm_tn(dw, gq, xq, n, m, k, true, threads);
  }
  if (dbias != nullptr) add_column_sums(dbias, dy, m, n);
  return "";
}

void add_column_sums(float* sums, const float* y, int64_t m, int64_t n) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) sums[j] += y[i * n + j];
  }
}

}  // namespace mx::nn::cpu
