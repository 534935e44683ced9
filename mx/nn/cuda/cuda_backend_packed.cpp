// Linear layers whose operands stay MX storage up to the product (packed_products): each operand
// is quantized to codes and scales, with blocks along the product's reduction axis, and
// mx_gemm_auto multiplies them. The quantized operands are the bits that the bfloat16 casts of
// cuda_backend_linear.cpp decode to; only the products' order of float32 additions differs.
#include <cstdint>
#include <string>
#include <vector>

#include "mx/core/format.h"
#include "mx/io/cat.h"
#include "mx/kernels/cuda/mx_gemm_route.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/kernels/cuda/transpose_blocks_cuda.h"
#include "mx/nn/cast_streams.h"
#include "mx/nn/cuda/cuda_backend_impl.h"

namespace mx::nn::cuda_impl {

namespace {

using io::cat;

constexpr size_t kAlign = 256;

size_t aligned(size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

bool packable(const OperandCast& c) {
  if (c.kind != OperandCast::Kind::kMx || c.is_rotated()) return false;
  const QuantSpec& s = c.spec;
  const int bits = traits(s.format).bits;
  return s.block_size == 32 && !s.asymmetric && !s.is_tiled() &&
         (bits == 4 || bits == 6 || bits == 8);
}

}  // namespace

bool CudaBackend::packs(const OperandCast& a, const OperandCast& b,
                        std::initializer_list<int64_t> dims) const {
  if (!options_.packed_products || !packable(a) || !packable(b)) return false;
  for (const int64_t d : dims) {
    if (d <= 0 || d % 32 != 0) return false;
  }
  return true;
}

mx::cuda::MxMatrix CudaBackend::pack(Buf x, int64_t rows, int64_t cols, int axis,
                                     const OperandCast& cast, const char* role, uint64_t stream,
                                     size_t index) {
  const QuantSpec spec = cast_spec(cast.spec, axis, stream);
  const int block_bytes = 4 * traits(spec.format).bits;
  const size_t blocks = size_t(rows / 32 * cols);  // rows and cols are multiples of 32
  const size_t codes = aligned(blocks * size_t(block_bytes)), one = codes + aligned(blocks);
  // Down the columns the cast lands in the second half of the slot, then moves to the first.
  auto* base = static_cast<uint8_t*>(slot(index, axis == 0 ? 2 * one : one));
  if (base == nullptr) return {};
  uint8_t* staged = axis == 0 ? base + one : base;
  const std::vector<int64_t> shape{rows, cols};
  const DType dtype = x.type == BufType::kBF16 ? DType::kBF16 : DType::kF32;
  std::string e =
      mx::cuda::quantize_cuda(x.p, dtype, shape, spec, staged, staged + codes, nullptr, stream_);
  if (e.empty() && axis == 0) {
    e = mx::cuda::transpose_column_blocks_cuda(staged, staged + codes, rows, cols, block_bytes,
                                               base, base + codes, stream_);
  }
  if (!e.empty()) {
    record(cat("recipe role '", role, "' on a ", io::format_shape(shape), " operand: ", e));
    return {};
  }
  return {base, base + codes, spec.format};
}

bool CudaBackend::packed_product(const mx::cuda::MxMatrix& a, const mx::cuda::MxMatrix& b,
                                 int64_t m, int64_t n, int64_t k, const float* bias, void* d,
                                 BufType d_type) {
  mx::cuda::MxGemmArgs args;
  args.m = m, args.n = n, args.k = k;
  args.a = a, args.b = b;
  args.bias = bias;
  args.out_dtype = d_type == BufType::kBF16 ? DType::kBF16 : DType::kF32;
  args.d = d;
  const size_t bytes = mx::cuda::mx_gemm_auto_workspace_bytes(args);
  void* workspace = bytes > 0 ? slot(kMxWorkspace, bytes) : nullptr;
  if (bytes > 0 && workspace == nullptr) return false;
  if (std::string e = mx::cuda::mx_gemm_auto(args, workspace, bytes, products_->handle(), stream_);
      !e.empty()) {
    record(cat("MX product of ", m, " x ", k, " by ", k, " x ", n, ": ", e));
    return false;
  }
  return true;
}

bool CudaBackend::packed_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                                 const Recipe& recipe, SrKey key) {
  if (!packs(recipe.act_fwd, recipe.weight_fwd, {m, k, n})) return false;
  const uint64_t stream = stream_of(key);
  const mx::cuda::MxMatrix a = pack(x, m, k, 1, recipe.act_fwd, "act_fwd",
                                    operand_stream(stream, LinearOperand::kActFwd), kPackedA);
  const mx::cuda::MxMatrix b = pack(w, n, k, 1, recipe.weight_fwd, "weight_fwd",
                                    operand_stream(stream, LinearOperand::kWeightFwd), kPackedB);
  if (a.elements != nullptr && b.elements != nullptr) {
    packed_product(a, b, m, n, k, bias.empty() ? nullptr : bias.as<float>(), y.p, act());
  }
  check_launch("matmul_forward");
  return true;
}

bool CudaBackend::packed_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                                  int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                                  SrKey key) {
  if ((!dx.empty() && !packs(recipe.grad_out_dx, recipe.weight_dx, {m, k, n})) ||
      (!dw.empty() && !packs(recipe.grad_out_dw, recipe.act_dw, {m, k, n}))) {
    return false;
  }
  const uint64_t stream = stream_of(key);
  if (!dx.empty()) {
    // dx [m, k] = dy [m, n] W [n, k]: both reduce over n, W down its columns.
    const mx::cuda::MxMatrix a = pack(dy, m, n, 1, recipe.grad_out_dx, "grad_out_dx",
                                      operand_stream(stream, LinearOperand::kGradOutDx), kPackedA);
    const mx::cuda::MxMatrix b = pack(w, n, k, 0, recipe.weight_dx, "weight_dx",
                                      operand_stream(stream, LinearOperand::kWeightDx), kPackedB);
    if (a.elements == nullptr || b.elements == nullptr) return true;
    if (!accumulate_dx) {
      if (!packed_product(a, b, m, k, n, nullptr, dx.p, act())) return true;
    } else {
      // dx += the product, rounded to the activation type first (cuBLASLt's beta = 1 rounds
      // once; mx_gemm_auto has no accumulating form).
      void* product = slot(kPackedOut, size_t(m * k) * buf_type_bytes(act()));
      if (product == nullptr || !packed_product(a, b, m, k, n, nullptr, product, act())) {
        return true;
      }
      kernels::residual_forward(dx.p, dx.p, product, m * k, bf16_act(), false, stream_);
    }
  }
  if (!dw.empty()) {
    // dW [n, k] += dy^T [n, m] x [m, k]: both reduce over the m tokens, down their columns.
    const mx::cuda::MxMatrix a = pack(dy, m, n, 0, recipe.grad_out_dw, "grad_out_dw",
                                      operand_stream(stream, LinearOperand::kGradOutDw), kPackedA);
    const mx::cuda::MxMatrix b = pack(x, m, k, 0, recipe.act_dw, "act_dw",
                                      operand_stream(stream, LinearOperand::kActDw), kPackedB);
    void* product = slot(kPackedOut, size_t(n * k) * sizeof(float));
    if (a.elements == nullptr || b.elements == nullptr || product == nullptr ||
        !packed_product(a, b, n, k, m, nullptr, product, BufType::kF32)) {
      return true;
    }
    // The same float32 add of the product to dW as cuBLASLt's beta = 1.
    kernels::residual_forward(dw.p, dw.p, product, n * k, false, false, stream_);
  }
  if (!dbias.empty()) {
    grow_ops(m, n);
    kernels::bias_grad(dbias.as<float>(), dy.p, m, n, bf16_act(), ops_, stream_);
  }
  check_launch("matmul_backward");
  return true;
}

}  // namespace mx::nn::cuda_impl
