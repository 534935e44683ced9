#include "mx/train/bench.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/nn/adamw.h"
#include "mx/nn/model.h"

namespace mx::train {

using io::cat;

double training_flops_per_token(const nn::ModelConfig& m, int64_t params, int64_t seq_len) {
  return 6.0 * double(params) + 6.0 * double(m.n_layers) * double(m.dim) * double(seq_len);
}

std::string bench_training(const BenchConfig& c, BenchResult* result) {
  const int64_t seq_len = c.seq_len > 0 ? c.seq_len : c.model.seq_len;
  const int64_t rows = c.micro_batch > 0 ? c.micro_batch : c.batch;
  if (std::string e = nn::validate(c.model); !e.empty()) return e;
  if (c.batch < 1 || rows < 1 || c.batch % rows != 0) {
    return cat("--micro-batch must divide --batch (", c.batch, ")");
  }
  if (seq_len > c.model.seq_len) {
    return cat("--seq-len ", seq_len, " is longer than the model's context ", c.model.seq_len);
  }
  if (c.steps < 1 || c.warmup < 0) return "--steps must be at least 1 and --warmup not negative";
  nn::DeviceOptions device = c.device;
  if (!c.tuned_products_out.empty()) {
    if (c.warmup < 1)
      return "--tune-products times the products in a warm-up step: --warmup 1 or more";
    if (std::string e = io::check_output_file(c.tuned_products_out); !e.empty()) return e;
    device.tune_products = true;
  }
  std::unique_ptr<nn::Backend> backend;
  if (std::string e = nn::make_backend(device, c.recipe, &backend); !e.empty()) return e;
  BenchResult r;
  r.device = backend->device_description();
  nn::Model model(c.model, std::move(backend));
  model.set_recipe(c.recipe);
  if (std::string e = model.reserve(rows, seq_len); !e.empty()) return e;
  model.params().init(c.seed);
  model.upload_params();
  nn::AdamW optimizer(model, nn::AdamWConfig{});
  // Random tokens: the speed of a step does not depend on what it reads.
  std::mt19937_64 rng(c.seed);
  std::uniform_int_distribution<uint32_t> token(0, uint32_t(c.model.vocab - 1));
  std::vector<uint32_t> inputs(size_t(c.batch * seq_len)), targets(inputs.size());
  for (uint32_t& t : inputs) t = token(rng);
  for (uint32_t& t : targets) t = token(rng);
  const int64_t passes = c.batch / rows;
  nn::PassOptions training;
  training.training = true;
  training.grad_scale = 1.0f / float(passes);
  // Every pass reads its loss back, so a step's work is done when it returns.
  auto step = [&](int64_t index) -> std::string {
    model.zero_grad();
    for (int64_t pass = 0; pass < passes; ++pass) {
      model.set_step(uint64_t(index * passes + pass));
      const size_t first = size_t(pass * rows * seq_len);
      if (std::string e = model.forward(inputs.data() + first, targets.data() + first, rows,
                                        seq_len, &r.last_loss, training);
          !e.empty()) {
        return e;
      }
      if (std::string e = model.backward(); !e.empty()) return e;
    }
    optimizer.step(model, 1e-4f, nn::clip_scale(nn::global_grad_norm(model), 1.0));
    return "";
  };
  for (int64_t i = 0; i < c.warmup; ++i) {
    if (std::string e = step(i); !e.empty()) return e;
  }
  if (!c.tuned_products_out.empty()) {
    if (std::string e =
            nn::save_product_algorithms(model.backend(), c.tuned_products_out, &r.tuned_products);
        !e.empty()) {
      return e;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < c.steps; ++i) {
    if (std::string e = step(c.warmup + i); !e.empty()) return e;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!std::isfinite(r.last_loss)) return "the loss is not finite";
  r.params = model.params().count();
  r.tokens_per_step = c.batch * seq_len;
  r.seconds_per_step = seconds / double(c.steps);
  r.tokens_per_s = double(r.tokens_per_step) / r.seconds_per_step;
  r.flops_per_token = training_flops_per_token(c.model, r.params, seq_len);
  r.peak_memory = model.backend().peak_memory();
  *result = std::move(r);
  return "";
}

}  // namespace mx::train
