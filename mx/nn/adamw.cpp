#include "mx/nn/adamw.h"

#include <cmath>

namespace mx::nn {

float LrSchedule::at(int64_t step) const {
  if (step < warmup) return max_lr * float(step + 1) / float(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return float(min_lr + cosine * (max_lr - min_lr));
}

double global_grad_norm(Model& model) {
  return model.backend().norm(model.grad_buf());
}

double clip_grad_norm(Model& model, double max_norm) {
  const double norm = global_grad_norm(model);
  const float factor = clip_scale(norm, max_norm);
  if (factor != 1.0f) model.backend().scale(model.grad_buf(), factor);
  return norm;
}

float clip_scale(double norm, double max_norm) {
  return max_norm > 0.0 && norm > max_norm ? float(max_norm / norm) : 1.0f;
}

AdamWStep adamw_step(const AdamWConfig& config, int64_t t, float lr) {
  AdamWStep s{};
  s.lr = lr;
  s.beta1 = config.beta1;
  s.beta2 = config.beta2;
  s.eps = config.eps;
  s.weight_decay = config.weight_decay;
  s.bias_correction1 = 1.0f - float(std::pow(double(config.beta1), double(t)));
  s.bias_correction2 = 1.0f - float(std::pow(double(config.beta2), double(t)));
  return s;
}

std::vector<uint8_t> decay_mask(const Params& params) {
  std::vector<uint8_t> mask(size_t(params.size()), 0);
  for (const ParamView& view : params.views()) {
    for (int64_t i = 0; i < view.size; ++i) mask[size_t(view.offset + i)] = view.decays() ? 1 : 0;
  }
  return mask;
}

AdamW::AdamW(Model& model, const AdamWConfig& config)
    : config_(config),
      backend_(&model.backend()),
      m_(size_t(model.params().size()), 0.0f),
      v_(size_t(model.params().size()), 0.0f),
      decay_(decay_mask(model.params())) {
  const int64_t n = model.params().size();
  Backend& be = *backend_;
  if (be.host_visible()) {
    m_buf_ = be.wrap(m_.data(), BufType::kF32, n);
    v_buf_ = be.wrap(v_.data(), BufType::kF32, n);
    decay_buf_ = be.wrap(decay_.data(), BufType::kU8, n);
  } else {
    m_buf_ = be.alloc(BufType::kF32, n);
    v_buf_ = be.alloc(BufType::kF32, n);
    decay_buf_ = be.alloc(BufType::kU8, n);
    if (!decay_buf_.empty()) be.upload(decay_buf_, decay_.data());
  }
}

void AdamW::upload() {
  if (backend_->host_visible()) return;
  backend_->upload(m_buf_, m_.data());
  backend_->upload(v_buf_, v_.data());
}

void AdamW::download() {
  if (backend_->host_visible()) return;
  backend_->download(m_.data(), m_buf_);
  backend_->download(v_.data(), v_buf_);
}

void AdamW::step(Model& model, float lr, float grad_scale) {
  ++t_;
  AdamWStep s = adamw_step(config_, t_, lr);
  s.grad_scale = grad_scale;
  model.backend().adamw(model.param_buf(), model.grad_buf(), m_buf_, v_buf_, decay_buf_, s);
}

}  // namespace mx::nn
