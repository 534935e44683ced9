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
#include "mx/nn/packed_operands.h"

namespace mx::nn::cuda_impl {

namespace {

using io::cat;

constexpr size_t kAlign = 256;

size_t aligned(size_t bytes) {
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

// cuBLASLt writes the products' outputs in place only at 16-byte boundaries.
bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

}  // namespace

bool CudaBackend::packs(const OperandCast& a, const OperandCast& b,
                        std::initializer_list<int64_t> dims) const {
  return options_.packed_products && product_takes_packed_operands(a, b, dims);
}

CudaBackend::PackedRoom CudaBackend::packed_room(int64_t rows, int64_t cols, ElementFormat format,
                                                 bool staged, size_t index) {
  const int block_bytes = 4 * traits(format).bits;
  const size_t blocks = size_t(rows / 32 * cols);  // rows and cols are multiples of 32
  const size_t codes = aligned(blocks * size_t(block_bytes)), one = codes + aligned(blocks);
  // A cast down the columns lands in the second half of the slot, then moves to the first.
  auto* base = static_cast<uint8_t*>(slot(index, staged ? 2 * one : one));
  if (base == nullptr) return {};
  PackedRoom room;
  room.format = format;
  room.matrix = {base, base + codes, nullptr};
  if (staged) room.staged = {base + one, base + one + codes, nullptr};
  return room;
}

std::string CudaBackend::transpose_staged(const PackedRoom& room, int64_t rows, int64_t cols) {
  return mx::cuda::transpose_column_blocks_cuda(room.staged.elements, room.staged.scales, rows,
                                                cols, 4 * traits(room.format).bits,
                                                room.matrix.elements, room.matrix.scales, stream_);
}

mx::cuda::MxMatrix CudaBackend::pack(Buf x, int64_t rows, int64_t cols, int axis,
                                     const OperandCast& cast, const char* role, uint64_t stream,
                                     size_t index) {
  const QuantSpec spec = cast_spec(cast.spec, axis, stream);
  const PackedRoom room = packed_room(rows, cols, spec.format, axis == 0, index);
  if (room.matrix.elements == nullptr) return {};
  const mx::cuda::MxDeviceBuffers& cast_to = axis == 0 ? room.staged : room.matrix;
  const std::vector<int64_t> shape{rows, cols};
  std::string e = mx::cuda::quantize_cuda(x.p, dtype_of(x.type), shape, spec, cast_to.elements,
                                          cast_to.scales, nullptr, stream_);
  if (e.empty() && axis == 0) e = transpose_staged(room, rows, cols);
  if (!e.empty()) {
    record(cat("recipe role '", role, "' on a ", io::format_shape(shape), " operand: ", e));
    return {};
  }
  return room.as_matrix();
}

bool CudaBackend::pack_dy_once(Buf dy, int64_t m, int64_t n, const Recipe& recipe, uint64_t stream,
                               mx::cuda::MxMatrix* rows, mx::cuda::MxMatrix* cols) {
  const QuantSpec along =
      cast_spec(recipe.grad_out_dx.spec, 1, operand_stream(stream, LinearOperand::kGradOutDx));
  QuantSpec down =
      cast_spec(recipe.grad_out_dw.spec, 0, operand_stream(stream, LinearOperand::kGradOutDw));
  // One spec serves both casts where only the axis and the stochastic seed differ, and the
  // seed does not matter.
  down.axis = along.axis, down.seed = along.seed;
  if (!(down == along) || along.rounding == Rounding::kStochastic) return false;
  const PackedRoom r = packed_room(m, n, along.format, false, kPackedA);
  const PackedRoom c = packed_room(m, n, along.format, true, kPackedDy);
  if (r.matrix.elements == nullptr || c.matrix.elements == nullptr) return true;  // recorded
  const std::vector<int64_t> shape{m, n};
  std::string e = mx::cuda::quantize_dual_cuda(dy.p, dtype_of(dy.type), shape, along, r.matrix,
                                               c.staged, stream_);
  if (e.empty()) e = transpose_staged(c, m, n);
  if (!e.empty()) {
    record(cat("recipe roles 'grad_out_dx' and 'grad_out_dw' on a ", io::format_shape(shape),
               " operand: ", e));
    return true;
  }
  *rows = r.as_matrix(), *cols = c.as_matrix();
  return true;
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
  if (!packs(recipe.act_fwd, recipe.weight_fwd, {m, k, n}) || !aligned16(y.p)) return false;
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
  if ((!dx.empty() &&
       (!packs(recipe.grad_out_dx, recipe.weight_dx, {m, k, n}) || !aligned16(dx.p))) ||
      (!dw.empty() && !packs(recipe.grad_out_dw, recipe.act_dw, {m, k, n}))) {
    return false;
  }
  const uint64_t stream = stream_of(key);
  // dy's two casts from one read where both products need them.
  mx::cuda::MxMatrix dy_rows, dy_cols;
  if (!dx.empty() && !dw.empty() && pack_dy_once(dy, m, n, recipe, stream, &dy_rows, &dy_cols) &&
      (dy_rows.elements == nullptr || dy_cols.elements == nullptr)) {
    return true;  // recorded
  }
  if (!dx.empty()) {
    // dx [m, k] = dy [m, n] W [n, k]: both reduce over n, W down its columns.
    const mx::cuda::MxMatrix a =
        dy_rows.elements != nullptr
            ? dy_rows
            : pack(dy, m, n, 1, recipe.grad_out_dx, "grad_out_dx",
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
    const mx::cuda::MxMatrix a =
        dy_cols.elements != nullptr
            ? dy_cols
            : pack(dy, m, n, 0, recipe.grad_out_dw, "grad_out_dw",
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
