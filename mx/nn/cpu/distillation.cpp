// The distillation loss: the KL divergence from a teacher's next-token distribution to the
// model's, and its gradient in the model's logits.
#include <cmath>
#include <cstdint>

#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/layers.h"

namespace mx::nn::cpu {

void distillation_loss(float* losses, float* dlogits, const float* logits, const float* teacher,
                       int64_t n, int64_t v, float scale, int threads) {
  mx::cpu::parallel_for(n, 4, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* s = logits + i * v;
      const float* t = teacher + i * v;
      float s_max = s[0], t_max = t[0];
      for (int64_t j = 1; j < v; ++j) {
        s_max = std::fmax(s_max, s[j]);
        t_max = std::fmax(t_max, t[j]);
      }
      double s_sum = 0.0, t_sum = 0.0;
      for (int64_t j = 0; j < v; ++j) {
        s_sum += std::exp(double(s[j]) - s_max);
        t_sum += std::exp(double(t[j]) - t_max);
      }
      const double s_log = std::log(s_sum), t_log = std::log(t_sum);
      // KL = sum q (log q - log p), from the logits: log q - log p is a difference of the two
      // rows' shifted logits, exact where q and p underflow.
      double kl = 0.0;
      for (int64_t j = 0; j < v; ++j) {
        const double log_q = double(t[j]) - t_max - t_log;
        const double log_p = double(s[j]) - s_max - s_log;
        kl += std::exp(log_q) * (log_q - log_p);
      }
      losses[i] = float(kl);
      if (dlogits == nullptr) continue;
      float* d = dlogits + i * v;  // may be s itself: each s[j] is read before d[j] is written
      for (int64_t j = 0; j < v; ++j) {
        const double p = std::exp(double(s[j]) - s_max - s_log);
        const double q = std::exp(double(t[j]) - t_max - t_log);
        d[j] = float((p - q) * scale);
      }
    }
  });
}

}  // namespace mx::nn::cpu
