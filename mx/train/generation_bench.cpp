#include "mx/train/generation_bench.h"

#include <chrono>
#include <random>
#include <vector>

#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/train/generate.h"

namespace mx::train {

std::string bench_generation(nn::Model& model, const GenerationBenchConfig& c,
                             GenerationBenchResult* result) {
  if (c.prompt_tokens < 1) return "the prompt needs at least one token";
  if (c.new_tokens < 2) return "the rate needs at least two new tokens";
  // Random prompt tokens: the speed of a pass does not depend on what it reads.
  std::mt19937_64 rng(c.seed);
  std::uniform_int_distribution<uint32_t> token(0, uint32_t(model.config().vocab - 1));
  std::vector<uint32_t> tokens(size_t(c.prompt_tokens));
  for (uint32_t& t : tokens) t = token(rng);
  SampleOptions options;
  options.max_new_tokens = c.new_tokens;
  options.temperature = 0.0f;  // greedy: no stop token, every run the same length
  options.use_cache = c.use_cache;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  Clock::time_point first, last;
  int64_t drawn = 0;
  const std::string error = generate(
      model, &tokens, options, [&](uint32_t) { (drawn++ == 0 ? first : last) = Clock::now(); });
  if (!error.empty()) return error;
  if (drawn != c.new_tokens) return io::cat("generation stopped after ", drawn, " tokens");
  GenerationBenchResult r;
  r.device = model.backend().device_description();
  r.cached = c.use_cache && model.can_cache();
  r.first_token_s = std::chrono::duration<double>(first - start).count();
  r.tokens_per_s = double(c.new_tokens - 1) / std::chrono::duration<double>(last - first).count();
  r.peak_memory = model.backend().peak_memory();
  r.resident = io::resident_bytes();
  *result = std::move(r);
  return "";
}

}  // namespace mx::train
