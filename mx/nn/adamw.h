// AdamW over a model's FP32 master weights, in the model's backend, with a warm-up + cosine
// learning-rate schedule and global-norm gradient clipping.
#pragma once

#include <cstdint>
#include <vector>

#include "mx/nn/model.h"

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

// sqrt(sum of squared gradients), summed in double in buffer order on the CPU.
double global_grad_norm(Model& model);

// Scales the gradients by max_norm / norm when the global norm exceeds max_norm (> 0).
// Returns the norm before clipping.
double clip_grad_norm(Model& model, double max_norm);

// The factor clip_grad_norm would scale gradients of global norm `norm` by (1 when it would
// leave them), for AdamW's step to apply as it reads them.
float clip_scale(double norm, double max_norm);

// The update's constants for AdamW's t-th update (t from 1) at learning rate lr.
AdamWStep adamw_step(const AdamWConfig& config, int64_t t, float lr);

// The weight-decay mask of `params`: 1 for every element of a decayed tensor (linear-layer
// matrices), 0 for the rest.
std::vector<uint8_t> decay_mask(const Params& params);

class AdamW {
 public:
  // Moments in `model`'s backend, zero.
  AdamW(Model& model, const AdamWConfig& config);

  // One update with learning rate lr, the gradients taken times grad_scale (clip_scale); the
  // bias corrections use the update count.
  void step(Model& model, float lr, float grad_scale = 1.0f);
  int64_t steps() const { return t_; }
  // For checkpoints: the update count, and the moments on the host. After changing m() or v(),
  // upload(); before reading them, download() (both no-ops where the backend shares the host's
  // memory).
  void set_steps(int64_t t) { t_ = t; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void upload();
  void download();

 private:
  AdamWConfig config_;
  Backend* backend_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per parameter element
  Buf m_buf_, v_buf_, decay_buf_;
  int64_t t_ = 0;
};

}  // namespace mx::nn
