#include "mx/nn/cast_probe.h"

#include <cmath>
#include <cstring>

#include "mx/core/half.h"
#include "mx/nn/cpu/matmul.h"

namespace mx::nn {

double CastError::relative_rmse() const {
  return sum_sq > 0 ? std::sqrt(err_sq / sum_sq) : 0.0;
}

double CastError::flushed_fraction() const {
  return nonzero > 0 ? double(flushed) / double(nonzero) : 0.0;
}

std::string_view linear_operand_name(LinearOperand role) {
  switch (role) {
    case LinearOperand::kActFwd:
      return "act_fwd";
    case LinearOperand::kWeightFwd:
      return "weight_fwd";
    case LinearOperand::kGradOutDx:
      return "grad_out_dx";
    case LinearOperand::kWeightDx:
      return "weight_dx";
    case LinearOperand::kGradOutDw:
      return "grad_out_dw";
    case LinearOperand::kActDw:
      return "act_dw";
  }
  return "?";
}

CastProbe::CastProbe(std::unique_ptr<Backend> inner, int threads)
    : inner_(std::move(inner)), threads_(threads) {}

std::vector<CastError> CastProbe::errors() const {
  std::vector<CastError> out;
  out.reserve(order_.size());
  for (const Where& w : order_) out.push_back(errors_.at(w));
  return out;
}

void CastProbe::measure(Buf src, int64_t rows, int64_t cols, int axis, const OperandCast& cast,
                        LinearOperand role, SrKey key) {
  if (cast.is_none() || src.empty()) return;
  const int64_t n = rows * cols;
  values_.resize(size_t(n));
  if (src.type == BufType::kBF16) {
    std::vector<uint16_t> bits(static_cast<size_t>(n));
    inner_->download(bits.data(), src.at(0, n));
    for (int64_t i = 0; i < n; ++i) values_[size_t(i)] = bf16_to_float(bits[size_t(i)]);
  } else {
    inner_->download(values_.data(), src.at(0, n));
  }
  std::string error;
  const float* q =
      cpu::cast_operand(values_.data(), rows, cols, axis, cast, linear_operand_name(role),
                        operand_stream(stream_of(key), role), cast_, &error, threads_);
  if (!error.empty()) {
    if (probe_error_.empty()) probe_error_ = error;
    return;
  }
  const Where where{key.layer, key.site, role};
  auto [it, inserted] = errors_.try_emplace(where);
  CastError& e = it->second;
  if (inserted) {
    order_.push_back(where);
    e.layer = key.layer, e.site = key.site, e.role = role;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double x = values_[size_t(i)], d = double(q[i]) - x;
    e.sum_sq += x * x;
    e.err_sq += d * d;
    e.nonzero += x != 0 ? 1 : 0;
    e.flushed += x != 0 && q[i] == 0 ? 1 : 0;
  }
  e.count += n;
}

void CastProbe::matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                               const Recipe& recipe, SrKey key) {
  measure(x, m, k, 1, recipe.act_fwd, LinearOperand::kActFwd, key);
  measure(w, n, k, 1, recipe.weight_fwd, LinearOperand::kWeightFwd, key);
  inner_->matmul_forward(y, x, w, bias, m, k, n, recipe, key);
}

void CastProbe::matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                                int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                                SrKey key) {
  if (!dx.empty()) {
    measure(dy, m, n, 1, recipe.grad_out_dx, LinearOperand::kGradOutDx, key);
    measure(w, n, k, 0, recipe.weight_dx, LinearOperand::kWeightDx, key);
  }
  if (!dw.empty()) {
    measure(dy, m, n, 0, recipe.grad_out_dw, LinearOperand::kGradOutDw, key);
    measure(x, m, k, 0, recipe.act_dw, LinearOperand::kActDw, key);
  }
  inner_->matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, accumulate_dx, recipe, key);
}

}  // namespace mx::nn
