// The speed of training steps, apart from any run: a model of a given shape, random weights and
// random tokens, full steps (forward, backward, gradient clip, AdamW) under a recipe on a
// device, timed after a few untimed warm-up steps. `mx bench train` prints it.
#pragma once

#include <cstdint>
#include <string>

#include "mx/nn/devices/devices.h"
#include "mx/nn/model_config.h"
#include "mx/nn/recipe.h"

namespace mx::train {

struct BenchConfig {
  nn::ModelConfig model;
  nn::Recipe recipe;
  nn::DeviceOptions device;
  int64_t batch = 8;        // sequences per step
  int64_t micro_batch = 0;  // sequences per pass (0: the whole batch); divides batch
  int64_t seq_len = 0;      // 0: the model's context
  int64_t steps = 20;       // timed
  int64_t warmup = 3;       // untimed, first
  uint64_t seed = 1;
  // Where not empty: the warm-up steps tune the CUDA backend's product algorithms
  // (nn::DeviceOptions::tune_products) and this file receives them before the timed steps.
  std::string tuned_products_out;
};

struct BenchResult {
  std::string device;  // Backend::device_description
  int64_t params = 0;
  int64_t tokens_per_step = 0;
  double seconds_per_step = 0;
  double tokens_per_s = 0;
  // Model FLOPs per token of a training step, 6 N + 6 L C T (N parameters, L layers, width C,
  // context T): the weights' products forward and backward, and causal attention's.
  double flops_per_token = 0;
  int64_t peak_memory = 0;  // Backend::peak_memory after the last step
  float last_loss = 0;
  size_t tuned_products = 0;  // the products written to tuned_products_out
};

double training_flops_per_token(const nn::ModelConfig& model, int64_t params, int64_t seq_len);

std::string bench_training(const BenchConfig& config, BenchResult* result);

}  // namespace mx::train
