#include "mx/nn/adamw.h"

#include <cmath>

#include "mx/kernels/cpu/parallel.h"

namespace mx::nn {

float LrSchedule::at(int64_t step) const {
  if (step < warmup) return max_lr * float(step + 1) / float(warmup);
  if (step >= total) return min_lr;
  const double progress = double(step - warmup) / double(std::max<int64_t>(1, total - warmup));
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return float(min_lr + cosine * (max_lr - min_lr));
}

double global_grad_norm(const Params& params) {
  const float* g = params.grad();
  double sum = 0.0;
  for (int64_t i = 0; i < params.size(); ++i) sum += double(g[i]) * double(g[i]);
  return std::sqrt(sum);
}

double clip_grad_norm(Params& params, double max_norm) {
  const double norm = global_grad_norm(params);
  if (max_norm > 0.0 && norm > max_norm) {
    const float scale = float(max_norm / norm);
    float* g = params.grad();
    for (int64_t i = 0; i < params.size(); ++i) g[i] *= scale;
  }
  return norm;
}

AdamW::AdamW(const Params& params, const AdamWConfig& config)
    : config_(config), m_(params.size(), 0.0f), v_(params.size(), 0.0f), decay_(params.size(), 0) {
  for (const ParamView& view : params.views()) {
    for (int64_t i = 0; i < view.size; ++i) decay_[view.offset + i] = view.decays() ? 1 : 0;
  }
}

void AdamW::step(Params& params, float lr) {
  ++t_;
  const float b1 = config_.beta1, b2 = config_.beta2;
  const float c1 = 1.0f - float(std::pow(double(b1), double(t_)));
  const float c2 = 1.0f - float(std::pow(double(b2), double(t_)));
  float* p = params.data();
  const float* g = params.grad();
  mx::cpu::parallel_for(params.size(), 4096, 0, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      m_[i] = b1 * m_[i] + (1.0f - b1) * g[i];
      v_[i] = b2 * v_[i] + (1.0f - b2) * g[i] * g[i];
      const float mhat = m_[i] / c1, vhat = v_[i] / c2;
      const float decay = decay_[i] ? config_.weight_decay * p[i] : 0.0f;
      p[i] -= lr * (mhat / (std::sqrt(vhat) + config_.eps) + decay);
    }
  });
}

}  // namespace mx::nn
