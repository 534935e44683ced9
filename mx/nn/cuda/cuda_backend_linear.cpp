// The CUDA backend's matrix products (cuBLASLt), the casts of their operands as the recipe
// says, and the classifier's products over rows padded to a multiple of 8.
#include "mx/nn/cuda/cuda_backend_impl.h"

#include <cstdint>
#include <string>
#include <vector>

#include "mx/io/cat.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/cast_streams.h"

namespace mx::nn::cuda_impl {

namespace {

using io::cat;

// Whether one kernel makes both MX casts of an [m, n] bfloat16 operand, along its rows and down
// its columns, from a single read of it: what keeping x's cast and summing dy's bias rely on.
bool dual_cast_reads_once(const OperandCast& along, const OperandCast& down, int64_t m, int64_t n) {
  if (along.kind != OperandCast::Kind::kMx || down.kind != OperandCast::Kind::kMx) return false;
  const std::vector<int64_t> shape{m, n};
  bool once = false;
  return mx::cuda::fake_quantize_dual_reads_once(DType::kBF16, shape, cast_spec(along.spec, 1, 0),
                                                 cast_spec(down.spec, 0, 0), &once)
             .empty() &&
         once;
}

}  // namespace

CudaBackend::Operands CudaBackend::forward_operands(Buf x, Buf w, int64_t m, int64_t k, int64_t n,
                                                    const Recipe& recipe, SrKey key) {
  const uint64_t stream = stream_of(key);
  Operands q;
  q.x = forward_input(x, m, k, recipe, stream);
  q.w = weight_cast(w, n, k, 1, recipe.weight_fwd, "weight_fwd",
                    operand_stream(stream, LinearOperand::kWeightFwd), 1);
  return q.ok() ? q : Operands{};
}

bool CudaBackend::keeps_input_cast(int64_t m, int64_t k, const Recipe& recipe) const {
  const OperandCast &fwd = recipe.act_fwd, &dw = recipe.act_dw;
  return !options_.packed_products && bf16_act() && !fwd.is_rotated() && !dw.is_rotated() &&
         cast_ignores_key(fwd) && cast_ignores_key(dw) && dual_cast_reads_once(fwd, dw, m, k);
}

int64_t CudaBackend::input_kept_count(int64_t m, int64_t k, const Recipe& recipe) const {
  return keeps_input_cast(m, k, recipe) ? m * k + 128 : 0;
}

// The conditions under which linear_backward's dual cast of dy also sums the bias gradient.
bool CudaBackend::sums_bias_with_dy_casts(int64_t m, int64_t n, const Recipe& recipe) const {
  return !options_.packed_products && bf16_act() && round_up(n, 8) == n &&
         dual_cast_reads_once(recipe.grad_out_dx, recipe.grad_out_dw, m, n);
}

void* CudaBackend::kept_input_cast(Buf x, int64_t m, int64_t k) {
  const uintptr_t end = reinterpret_cast<uintptr_t>(x.p) + uintptr_t(m * k) * sizeof(uint16_t);
  return reinterpret_cast<void*>((end + 255) & ~uintptr_t(255));
}

const void* CudaBackend::forward_input(Buf x, int64_t m, int64_t k, const Recipe& recipe,
                                       uint64_t stream) {
  inputs_with_kept_casts_.erase(x.p);
  const int64_t room = input_kept_count(m, k, recipe);
  if (room == 0 || x.type != BufType::kBF16 || x.n < m * k + room) {
    return prepare(x, {m, k}, 1, recipe.act_fwd, "act_fwd",
                   operand_stream(stream, LinearOperand::kActFwd), 0);
  }
  void* rows = slot(0, size_t(m * k) * sizeof(uint16_t));
  if (rows == nullptr ||
      !dual_cast(x.p, m, k, -1,
                 cast_spec(recipe.act_fwd.spec, 1, operand_stream(stream, LinearOperand::kActFwd)),
                 cast_spec(recipe.act_dw.spec, 0, operand_stream(stream, LinearOperand::kActDw)),
                 rows, kept_input_cast(x, m, k), "'act_fwd' and 'act_dw'")) {
    return nullptr;  // recorded
  }
  inputs_with_kept_casts_[x.p] = {m, k, recipe.act_dw};
  return rows;
}

const void* CudaBackend::dw_input(Buf x, int64_t m, int64_t k, const Recipe& recipe,
                                  uint64_t stream, size_t index) {
  const auto kept = inputs_with_kept_casts_.find(x.p);
  // x handed over with its room, as the forward had it.
  if (kept != inputs_with_kept_casts_.end() && kept->second.m == m && kept->second.k == k &&
      kept->second.cast == recipe.act_dw && x.n >= m * k + input_kept_count(m, k, recipe)) {
    return kept_input_cast(x, m, k);
  }
  return prepare(x, {m, k}, 0, recipe.act_dw, "act_dw",
                 operand_stream(stream, LinearOperand::kActDw), index);
}

void CudaBackend::matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                                 const Recipe& recipe, SrKey key) {
  if (packed_forward(y, x, w, bias, m, k, n, recipe, key)) return;
  const Operands q = forward_operands(x, w, m, k, n, recipe, key);
  if (!q.ok()) return;
  // Row-major y[M,N] = x[M,K] W[N,K]^T is column-major y^T = W x^T. An N that is not a
  // multiple of 8 (the classifier's vocabulary) sends cuBLASLt to slow unaligned kernels:
  // the product runs on W padded with zero rows, into rows padded alike, then goes to y.
  const int64_t padded = round_up(n, 8);
  if (padded == n) {
    forward_product(y.p, q, bias, epilogue_bias(bias), m, k, n);
  } else {
    const void* yp = padded_product(q.x, q.w, m, k, n);
    if (yp == nullptr) return;
    copy_rows(y.p, n, yp, padded, n, m);
    if (!bias.empty()) kernels::add_bias(y.p, bias.as<float>(), m, n, bf16_act(), stream_);
  }
  check_launch("matmul_forward");
}

void CudaBackend::forward_product(void* y, const Operands& q, Buf bias, const void* lt_bias,
                                  int64_t m, int64_t k, int64_t n, const void* residual) {
  const bool bias_added = gemm(true, false, n, m, k, q.w, k, q.x, k, y, act(), n,
                               residual != nullptr ? 1.0f : 0.0f, lt_bias, residual);
  if (!bias.empty() && !bias_added) {
    kernels::add_bias(y, bias.as<float>(), m, n, bf16_act(), stream_);
  }
}

void CudaBackend::matmuls_forward(std::span<const Product> products, Buf x, int64_t m, int64_t k,
                                  const Recipe& recipe) {
  bool shared = products.size() > 1 && cast_ignores_key(recipe.act_fwd);
  for (const Product& p : products) {
    shared = shared && p.n % 8 == 0 && !packs(recipe.act_fwd, recipe.weight_fwd, {m, k, p.n});
  }
  if (!shared) {
    Backend::matmuls_forward(products, x, m, k, recipe);
    return;
  }
  // Scratch 0, as forward_operands casts x; the weights go to 1.
  const void* xq = forward_input(x, m, k, recipe, stream_of(products[0].key));
  if (xq == nullptr) return;
  for (const Product& p : products) {
    const void* wq = weight_cast(p.w, p.n, k, 1, recipe.weight_fwd, "weight_fwd",
                                 operand_stream(stream_of(p.key), LinearOperand::kWeightFwd), 1);
    if (wq == nullptr) return;
    forward_product(p.y.p, {xq, wq}, p.bias, epilogue_bias(p.bias), m, k, p.n);
  }
  check_launch("matmuls_forward");
}

void CudaBackend::matmuls_backward(Buf dx, std::span<const ProductGrad> grads, Buf x, int64_t m,
                                   int64_t k, bool accumulate_dx, const Recipe& recipe) {
  bool shared = grads.size() > 1 && cast_ignores_key(recipe.act_dw) && !dx.empty();
  for (const ProductGrad& g : grads) {
    shared = shared && !g.dw.empty() && g.n % 8 == 0 &&
             !packs(recipe.grad_out_dx, recipe.weight_dx, {m, k, g.n}) &&
             !packs(recipe.grad_out_dw, recipe.act_dw, {m, k, g.n});
  }
  if (!shared) {
    Backend::matmuls_backward(dx, grads, x, m, k, accumulate_dx, recipe);
    return;
  }
  // A slot of its own: linear_backward's casts use the others.
  const void* xq = dw_input(x, m, k, recipe, stream_of(grads[0].key), kSharedActDw);
  if (xq == nullptr) return;
  for (size_t i = 0; i < grads.size(); ++i) {
    const ProductGrad& g = grads[i];
    linear_backward(dx, g.dw, g.dbias, g.dy, x, g.w, m, k, g.n, accumulate_dx || i > 0, recipe,
                    g.key, {}, {}, xq);
  }
}

void CudaBackend::matmul_gelu_forward(Buf out, Buf pre, Buf x, Buf w, Buf bias, int64_t m,
                                      int64_t k, int64_t n, bool bf16, const Recipe& recipe,
                                      SrKey key) {
  // Float32 activations (whose GELU may be rounded to bfloat16 after it) and widths that the
  // products pad take the two steps, as do products on packed operands.
  if (!bf16_act() || n % 8 != 0) {
    Backend::matmul_gelu_forward(out, pre, x, w, bias, m, k, n, bf16, recipe, key);
    return;
  }
  if (packed_forward(pre, x, w, bias, m, k, n, recipe, key)) {
    gelu_forward(out, pre, m * n, bf16);
    return;
  }
  const Operands q = forward_operands(x, w, m, k, n, recipe, key);
  if (!q.ok()) return;
  const void* b = epilogue_bias(bias);
  if (!bias.empty() && b == nullptr) return;  // recorded
  using Epilogue = kernels::LtProducts::Epilogue;
  // matmul_forward's product, with the GELU after the bias.
  if ((reinterpret_cast<uintptr_t>(b) & 15) == 0 &&
      gemm_gelu(bias.empty() ? Epilogue::kGeluAux : Epilogue::kGeluAuxBias, true, n, m, k, q.w, k,
                q.x, k, out.p, n, b, pre.p)) {
    check_launch("matmul_gelu_forward");
    return;
  }
  // No such kernel for this shape: the same operands, the GELU as its own pass.
  forward_product(pre.p, q, bias, b, m, k, n);
  gelu_forward(out, pre, m * n, bf16);
}

void CudaBackend::matmul_residual_forward(Buf out, Buf x, Buf w, Buf bias, Buf residual, int64_t m,
                                          int64_t k, int64_t n, bool bf16, const Recipe& recipe,
                                          SrKey key) {
  // Float32 activations (whose sum may be rounded to bfloat16 after it) and widths that the
  // products pad take the two steps, as do products on packed operands.
  if (!bf16_act() || n % 8 != 0) {
    Backend::matmul_residual_forward(out, x, w, bias, residual, m, k, n, bf16, recipe, key);
    return;
  }
  if (packed_forward(out, x, w, bias, m, k, n, recipe, key)) {
    residual_forward(out, residual, out, m * n, bf16);
    return;
  }
  const Operands q = forward_operands(x, w, m, k, n, recipe, key);
  if (!q.ok()) return;
  // matmul_forward's product, C = 1 x residual + the product (+ bias), rounded once.
  forward_product(out.p, q, bias, epilogue_bias(bias), m, k, n, residual.p);
  check_launch("matmul_residual_forward");
}

void CudaBackend::matmul_backward_gelu(Buf dpre, Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w,
                                       Buf pre, int64_t m, int64_t k, int64_t n,
                                       const Recipe& recipe, SrKey key) {
  if (!bf16_act() || k % 8 != 0) {
    Backend::matmul_backward_gelu(dpre, dx, dw, dbias, dy, x, w, pre, m, k, n, recipe, key);
    return;
  }
  if (packed_backward(dx, dw, dbias, dy, x, w, m, k, n, false, recipe, key)) {
    gelu_backward(dpre, pre, dx, m * k);
    return;
  }
  linear_backward(dpre, dw, dbias, dy, x, w, m, k, n, false, recipe, key, {}, pre);
}

void CudaBackend::matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                                  int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                                  SrKey key) {
  linear_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key, {});
}

void CudaBackend::classifier_forward(Buf logits, Buf losses, Buf x, Buf w, Buf targets, int64_t n,
                                     int64_t k, int64_t v, bool training, float dloss,
                                     const Recipe& recipe, SrKey key) {
  const int64_t padded = round_up(v, 8);
  if (!training || padded == v) {
    Backend::classifier_forward(logits, losses, x, w, targets, n, k, v, training, dloss, recipe,
                                key);
    return;
  }
  const Operands q = forward_operands(x, w, n, k, v, recipe, key);
  if (!q.ok()) return;
  void* yp = padded_product(q.x, q.w, n, k, v);
  if (yp == nullptr) return;
  kernels::classifier_loss(losses.as<float>(), yp, yp, targets.as<uint32_t>(), n, v, dloss,
                           bf16_act(), stream_, padded);
  pending_ = {logits.p, n, v};
  check_launch("classifier_forward");
}

void CudaBackend::classifier_backward(Buf dx, Buf dw, Buf dlogits, Buf x, Buf w, int64_t n,
                                      int64_t k, int64_t v, const Recipe& recipe, SrKey key) {
  // The padded rows serve both products where they can be cast as dlogits would be: in one
  // read for both casts (stochastic rounding too, drawing by the unpadded indices), or cast
  // one at a time where the casts do not depend on those indices.
  PaddedDy operands;
  if (pending_.dlogits == dlogits.p && pending_.rows == n && pending_.v == v) {
    const uint64_t stream = stream_of(key);
    const int64_t padded = round_up(v, 8);
    const Buf rows{scratch_[kPaddedOut].p, n * padded, act()};
    if (dual_dy_casts(rows, n, padded, v, recipe, stream, kPaddedDyDx, kPaddedDyDw, &operands)) {
      if (operands.dx == nullptr || operands.dw == nullptr) return;  // recorded
    } else if (casts_padded_rows(dlogits, recipe.grad_out_dx) &&
               casts_padded_rows(dlogits, recipe.grad_out_dw)) {
      operands = {prepare(rows, {n, padded}, 1, recipe.grad_out_dx, "grad_out_dx",
                          operand_stream(stream, LinearOperand::kGradOutDx), kPaddedDyDx),
                  prepare(rows, {n, padded}, 0, recipe.grad_out_dw, "grad_out_dw",
                          operand_stream(stream, LinearOperand::kGradOutDw), kPaddedDyDw)};
      if (operands.dx == nullptr || operands.dw == nullptr) return;  // prepare recorded why
    }
  }
  if (operands.dx == nullptr) {
    materialize_pending();
    linear_backward(dx, dw, {}, dlogits, x, w, n, k, v, false, recipe, key, {});
    return;
  }
  pending_ = {};
  linear_backward(dx, dw, {}, dlogits, x, w, n, k, v, false, recipe, key, operands);
}

bool CudaBackend::casts_padded_rows(Buf dlogits, const OperandCast& c) const {
  if (as_is(dlogits, c)) return true;
  const QuantSpec& s = c.spec;
  return c.kind == OperandCast::Kind::kMx && !s.asymmetric && !s.is_tiled() &&
         s.rounding != Rounding::kStochastic;
}

void CudaBackend::linear_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                                  int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                                  SrKey key, const PaddedDy& padded_dy, Buf dgelu_pre,
                                  const void* x_dw) {
  if (padded_dy.dx == nullptr && dgelu_pre.empty() &&
      packed_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key)) {
    return;
  }
  const uint64_t stream = stream_of(key);
  PaddedDy operands = padded_dy;
  // The dual cast's read of dy also sums its columns for the bias gradient.
  bool bias_summed = false;
  if (operands.dx == nullptr && !dx.empty() && !dw.empty() && round_up(n, 8) == n) {
    float* column_sums = nullptr;
    if (!dbias.empty()) {
      grow_ops(m, n);
      column_sums = ops_.partials;
    }
    if (dual_dy_casts(dy, m, n, n, recipe, stream, 0, kDyDw, &operands, column_sums)) {
      if (operands.dx == nullptr || operands.dw == nullptr) return;  // recorded
      if (column_sums != nullptr) {
        kernels::bias_grad_from_tile_sums(dbias.as<float>(), m, n, ops_, stream_);
        bias_summed = true;
      }
    }
  }
  // The padded copy of the dx product's dy operand, which the dW product reuses when neither
  // casts dy (a cast goes to a scratch slot that the next cast overwrites).
  const void* dx_operand = nullptr;
  const void* dx_padded = nullptr;
  if (!dx.empty()) {
    const void* wq = weight_cast(w, n, k, 0, recipe.weight_dx, "weight_dx",
                                 operand_stream(stream, LinearOperand::kWeightDx), 1);
    const void* gp = operands.dx;
    if (gp == nullptr) {
      const void* gq = prepare(dy, {m, n}, 1, recipe.grad_out_dx, "grad_out_dx",
                               operand_stream(stream, LinearOperand::kGradOutDx), 0);
      if (gq == nullptr) return;
      gp = padded_rows(gq, m, n, kPaddedDyDx);
      dx_operand = gq, dx_padded = gp;
    }
    if (wq == nullptr) return;
    // dx^T[K,M] = W^T[K,N] dy^T[N,M], over N padded with zeros when it is not a multiple of 8.
    const int64_t padded = round_up(n, 8);
    const void* wp = padded == n ? wq : padded_weight(wq, n, k);
    if (gp == nullptr || wp == nullptr) return;
    if (dgelu_pre.empty()) {
      gemm(false, false, k, m, padded, wp, k, gp, padded, dx.p, act(), k,
           accumulate_dx ? 1.0f : 0.0f);
    } else if (!gemm_gelu(kernels::LtProducts::Epilogue::kDgelu, false, k, m, padded, wp, k, gp,
                          padded, dx.p, k, nullptr, dgelu_pre.p)) {
      // No such kernel for this shape: the GELU's slope as its own pass, in place.
      gemm(false, false, k, m, padded, wp, k, gp, padded, dx.p, act(), k, 0.0f);
      kernels::gelu_backward(dx.p, dgelu_pre.p, dx.p, m * k, bf16_act(), stream_);
    }
  }
  if (!dw.empty()) {
    const void* xq = x_dw != nullptr ? x_dw : dw_input(x, m, k, recipe, stream, 1);
    const void* gp = operands.dw;
    if (gp == nullptr) {
      const void* gq = prepare(dy, {m, n}, 0, recipe.grad_out_dw, "grad_out_dw",
                               operand_stream(stream, LinearOperand::kGradOutDw), 0);
      if (gq == nullptr) return;
      const bool same = gq == dy.p && dx_operand == dy.p;
      gp = same ? dx_padded : padded_rows(gq, m, n, kPaddedDyDw);
    }
    if (xq == nullptr || gp == nullptr) return;
    // dW^T[K,N] += x^T[K,M] dy[M,N]. Where N is not a multiple of 8 (a vocabulary of 50,257),
    // cuBLASLt picks a far slower kernel for that width than for the padded one, whose zero
    // columns are then left out as the product is added: the sum is the same float32 add of
    // the product to dW that beta = 1 makes.
    const int64_t padded = round_up(n, 8);
    if (padded == n) {
      gemm(false, true, k, n, m, xq, k, gp, padded, dw.p, BufType::kF32, k, 1.0f);
    } else {
      void* product = slot(kPaddedDw, size_t(k * padded) * sizeof(float));
      if (product == nullptr) return;
      gemm(false, true, k, padded, m, xq, k, gp, padded, product, BufType::kF32, k, 0.0f);
      // dW += the product's first n columns: float32 adds, in place.
      kernels::residual_forward(dw.p, dw.p, product, k * n, false, false, stream_);
    }
  }
  if (!dbias.empty() && !bias_summed) {
    grow_ops(m, n);
    kernels::bias_grad(dbias.as<float>(), dy.p, m, n, bf16_act(), ops_, stream_);
  }
  check_launch("matmul_backward");
}

void CudaBackend::gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast,
                       uint64_t stream) {
  const void* xq = prepare(x, {m, k}, 1, cast, "act_fwd", stream, 0);
  if (xq == nullptr) return;
  const void* xp = padded_rows(xq, m, k, kPaddedDyDw);
  if (xp == nullptr) return;
  gemm(false, true, k, k, m, xq, k, xp, round_up(k, 8), h.p, BufType::kF32, k, 0.0f);
  check_launch("gram");
}

void* CudaBackend::padded_product(const void* xq, const void* wq, int64_t m, int64_t k, int64_t n) {
  materialize_pending();
  const int64_t padded = round_up(n, 8);
  const void* wp = padded_weight(wq, n, k);
  void* yp = slot(kPaddedOut, size_t(m * padded * buf_type_bytes(act())));
  if (wp == nullptr || yp == nullptr) return nullptr;
  gemm(true, false, padded, m, k, wp, k, xq, k, yp, act(), padded, 0.0f);
  return yp;
}

void CudaBackend::materialize_pending() {
  if (pending_.dlogits == nullptr) return;
  copy_rows(const_cast<void*>(pending_.dlogits), pending_.v, scratch_[kPaddedOut].p,
            round_up(pending_.v, 8), pending_.v, pending_.rows);
  pending_ = {};
}

bool CudaBackend::cast_keeps(BufType t, const OperandCast& c) {
  return c.kind == OperandCast::Kind::kNone ||
         (c.kind == OperandCast::Kind::kBF16 && t == BufType::kBF16);
}

void CudaBackend::copy_rows(void* dst, int64_t dst_stride, const void* src, int64_t src_stride,
                            int64_t width, int64_t rows) {
  kernels::copy_rows(dst, dst_stride, src, src_stride, width, rows, int(buf_type_bytes(act())),
                     stream_);
  check_launch("row copy");
}

const void* CudaBackend::padded_rows(const void* x, int64_t rows, int64_t n, size_t index) {
  const int64_t padded = round_up(n, 8);
  if (padded == n) return x;
  const size_t e = size_t(buf_type_bytes(act()));
  char* p = static_cast<char*>(slot(index, size_t(rows * padded) * e));
  if (p == nullptr) return nullptr;
  copy_rows(p, padded, x, n, n, rows);
  check(cudaMemset2DAsync(p + size_t(n) * e, size_t(padded) * e, 0, size_t(padded - n) * e,
                          size_t(rows), stream_),
        "padding");
  return p;
}

const void* CudaBackend::padded_weight(const void* w, int64_t n, int64_t k) {
  const size_t e = size_t(buf_type_bytes(act()));
  const size_t bytes = size_t(n * k) * e, padded = size_t(round_up(n, 8) * k) * e;
  char* p = static_cast<char*>(slot(kPaddedW, padded));
  if (p == nullptr) return nullptr;
  check(cudaMemcpyAsync(p, w, bytes, cudaMemcpyDeviceToDevice, stream_), "weight copy");
  check(cudaMemsetAsync(p + bytes, 0, padded - bytes, stream_), "padding");
  return p;
}

const void* CudaBackend::prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                                 const OperandCast& cast, const char* role, uint64_t stream,
                                 size_t index) {
  return prepare(x, shape_list, axis, cast, role, stream, index, gemm_type());
}

const void* CudaBackend::prepare(Buf x, std::initializer_list<int64_t> shape_list, int axis,
                                 const OperandCast& cast, const char* role, uint64_t stream,
                                 size_t index, BufType out) {
  if (cast.is_rotated()) {
    record(std::string("recipe role '") + role + "': block rotations run on the CPU backend only");
    return nullptr;
  }
  const std::vector<int64_t> shape(shape_list);
  int64_t count = 1;
  for (const int64_t d : shape) count *= d;
  // No copy when nothing would change.
  const bool identity = cast_keeps(x.type, cast);
  if (identity && x.type == out) return x.p;
  const bool only_rounded =
      cast.kind != OperandCast::Kind::kMx && x.type == BufType::kF32 && out == BufType::kBF16;
  if (only_rounded) {
    // cuBLASLt's heuristics assume 256-byte aligned operands, as the scratch slots are.
    const void* w = weight_as_bf16(x, count);
    if (w != nullptr && (reinterpret_cast<uintptr_t>(w) & 255) == 0) return w;
  }
  void* dst = slot(index, size_t(count * buf_type_bytes(out)));
  if (dst == nullptr) return nullptr;
  switch (cast.kind) {
    case OperandCast::Kind::kNone:
      if (out == BufType::kBF16) {
        kernels::f32_to_bf16(static_cast<uint16_t*>(dst), x.as<float>(), count, stream_);
      } else {
        kernels::bf16_to_f32(static_cast<float*>(dst), x.as<uint16_t>(), count, stream_);
      }
      break;
    case OperandCast::Kind::kBF16:
      if (x.type == BufType::kF32 && out == BufType::kBF16) {
        kernels::f32_to_bf16(static_cast<uint16_t*>(dst), x.as<float>(), count, stream_);
      } else if (x.type == out) {
        kernels::round_to_bf16(dst, x.p, count, out == BufType::kBF16, stream_);
      } else {
        kernels::bf16_to_f32(static_cast<float*>(dst), x.as<uint16_t>(), count, stream_);
      }
      break;
    case OperandCast::Kind::kMx:
      if (!mx_cast(x, shape, axis, cast, role, stream, dst, out)) return nullptr;
      break;
  }
  check_launch(role);
  return dst;
}

bool CudaBackend::mx_cast(Buf x, const std::vector<int64_t>& shape, int axis,
                          const OperandCast& cast, const char* role, uint64_t stream, void* dst,
                          BufType out) {
  const QuantSpec spec = cast_spec(cast.spec, axis, stream);
  if (std::string e = mx::cuda::fake_quantize_cuda(x.p, dtype_of(x.type), shape, spec,
                                                   dtype_of(out), dst, stream_);
      !e.empty()) {
    record(cat("recipe role '", role, "' on a ", io::format_shape(shape), " operand: ", e));
    return false;
  }
  return true;
}

const void* CudaBackend::epilogue_bias(Buf bias) {
  if (bias.empty()) return nullptr;
  if (!bf16_act()) return bias.p;
  // Where the weights' copy (or, under MX casts, which make none, the biases' own) leaves the
  // bias 16-byte aligned, as the epilogue needs.
  const void* w = weights_bf16_ != nullptr ? weight_as_bf16(bias, bias.n) : bias_as_bf16(bias);
  if (w != nullptr && (reinterpret_cast<uintptr_t>(w) & 15) == 0) return w;
  void* copy = slot(kBiasBf16, size_t(bias.n) * sizeof(uint16_t));
  if (copy != nullptr) {
    kernels::f32_to_bf16(static_cast<uint16_t*>(copy), bias.as<float>(), bias.n, stream_);
  }
  return copy;
}

bool CudaBackend::gemm_gelu(kernels::LtProducts::Epilogue epilogue, bool trans_a, int64_t m,
                            int64_t n, int64_t k, const void* a, int64_t lda, const void* b,
                            int64_t ldb, void* c, int64_t ldc, const void* bias, void* aux) {
  const kernels::LtProducts::Shape shape{trans_a, false, m,     n,     k,       lda,
                                         ldb,     ldc,   act(), false, epilogue};
  if (products_->run(shape, a, b, c, 0.0f, bias, aux)) return true;
  // A product algorithms file that does not fit is an error; no fused kernel is not.
  if (!products_->error().empty()) record(products_->error());
  return false;
}

bool CudaBackend::gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a,
                       int64_t lda, const void* b, int64_t ldb, void* c, BufType c_type,
                       int64_t ldc, float beta, const void* bias, const void* c_in) {
  using Epilogue = kernels::LtProducts::Epilogue;
  const kernels::LtProducts::Shape shape{
      trans_a, trans_b, m, n, k, lda, ldb, ldc, c_type, beta != 0.0f, Epilogue::kNone};
  if (bias != nullptr && (reinterpret_cast<uintptr_t>(bias) & 15) == 0) {
    kernels::LtProducts::Shape with_bias = shape;
    with_bias.epilogue = Epilogue::kBias;
    if (products_->run(with_bias, a, b, c, beta, bias, nullptr, c_in)) return true;
    if (!products_->error().empty()) record(products_->error());
  }
  if (!products_->run(shape, a, b, c, beta, nullptr, nullptr, c_in)) {
    record(!products_->error().empty()
               ? products_->error()
               : cat("cuBLASLt found no way to multiply ", m, " x ", k, " by ", k, " x ", n));
  }
  return false;
}

bool CudaBackend::dual_dy_casts(Buf dy, int64_t m, int64_t n, int64_t real_n, const Recipe& recipe,
                                uint64_t stream, size_t rows_index, size_t cols_index,
                                PaddedDy* out, float* column_sums) {
  const OperandCast& along = recipe.grad_out_dx;
  const OperandCast& down = recipe.grad_out_dw;
  if (along.kind != OperandCast::Kind::kMx || down.kind != OperandCast::Kind::kMx ||
      dy.type != BufType::kBF16 || gemm_type() != BufType::kBF16) {
    return false;
  }
  const std::vector<int64_t> shape{m, n};
  const QuantSpec rows_spec =
      cast_spec(along.spec, 1, operand_stream(stream, LinearOperand::kGradOutDx));
  const QuantSpec cols_spec =
      cast_spec(down.spec, 0, operand_stream(stream, LinearOperand::kGradOutDw));
  bool once = false;
  if (!mx::cuda::fake_quantize_dual_reads_once(DType::kBF16, shape, rows_spec, cols_spec, &once,
                                               real_n)
           .empty() ||
      !once) {
    return false;
  }
  const size_t bytes = size_t(m * n) * sizeof(uint16_t);
  void* rows = slot(rows_index, bytes);
  void* cols = slot(cols_index, bytes);
  if (rows == nullptr || cols == nullptr) return true;  // slot recorded why
  if (dual_cast(dy.p, m, n, real_n, rows_spec, cols_spec, rows, cols,
                "'grad_out_dx' and 'grad_out_dw'", column_sums)) {
    *out = {rows, cols};
  }
  return true;
}

bool CudaBackend::dual_cast(const void* x, int64_t rows, int64_t cols, int64_t real_cols,
                            const QuantSpec& along, const QuantSpec& down, void* rows_out,
                            void* cols_out, const char* roles, float* column_sums) {
  const std::vector<int64_t> shape{rows, cols};
  if (std::string e = mx::cuda::fake_quantize_dual_cuda(
          x, DType::kBF16, shape, along, down, rows_out, cols_out, stream_, real_cols, column_sums);
      !e.empty()) {
    record(cat("recipe roles ", roles, " on a ", io::format_shape(shape), " operand: ", e));
    return false;
  }
  check_launch(roles);
  return true;
}

}  // namespace mx::nn::cuda_impl
