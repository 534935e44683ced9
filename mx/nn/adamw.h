// AdamW over the flat FP32 master weights (params.h), a warm-up + cosine learning-rate
// schedule, and global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <vector>

#include "mx/nn/params.h"

namespace mx::nn {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  // Decoupled (Loshchilov & Hutter): p -= lr * wd * p, for linear-layer matrices only.
  float weight_decay = 0.1f;
};

// Linear warm-up from max_lr / warmup to max_lr over `warmup` steps, then a cosine from max_lr
// down to min_lr at step `total` (and min_lr after). Steps count from 0.
struct LrSchedule {
  float max_lr = 1e-3f;
  float min_lr = 1e-4f;
  int64_t warmup = 0;
  int64_t total = 1;
  float at(int64_t step) const;
};

// sqrt(sum of squared gradients), summed in double in buffer order.
double global_grad_norm(const Params& params);

// Scales the gradients by max_norm / norm when the global norm exceeds max_norm (> 0).
// Returns the norm before clipping.
double clip_grad_norm(Params& params, double max_norm);

class AdamW {
 public:
  AdamW(const Params& params, const AdamWConfig& config);

  // One update with learning rate lr; the bias corrections use the update count.
  void step(Params& params, float lr);
  int64_t steps() const { return t_; }
  // For restoring a checkpoint: the update count and the moments.
  void set_steps(int64_t t) { t_ = t; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }

 private:
  AdamWConfig config_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per parameter element
  int64_t t_ = 0;
};

}  // namespace mx::nn
