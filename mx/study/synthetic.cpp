#include "mx/study/synthetic.h"

#include <random>

#include "mx/kernels/cpu/quantize.h"

namespace mx::study {

std::string_view distribution_name(Distribution d) {
  switch (d) {
    case Distribution::kGaussian:
      return "gaussian";
    case Distribution::kHeavyTailed:
      return "heavy-tailed+outliers";
    case Distribution::kUniform:
      return "uniform";
  }
  return "?";
}

std::vector<float> synthetic_tensor(Distribution d, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(count);
  switch (d) {
    case Distribution::kGaussian: {
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (float& x : v) x = normal(rng);
      break;
    }
    case Distribution::kHeavyTailed: {
      std::student_t_distribution<float> t(3.0f);
      std::bernoulli_distribution outlier(0.001);
      for (float& x : v) x = t(rng) * (outlier(rng) ? 50.0f : 1.0f);
      break;
    }
    case Distribution::kUniform: {
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (float& x : v) x = uniform(rng);
      break;
    }
  }
  return v;
}

std::vector<ComparisonCell> compare_formats(const std::vector<float>& values, const QuantSpec& base,
                                            int threads) {
  const int64_t n = static_cast<int64_t>(values.size());
  const std::vector<int64_t> shape =
      n % 1024 == 0 ? std::vector<int64_t>{n / 1024, 1024} : std::vector<int64_t>{n};
  std::vector<float> decoded(values.size());
  std::vector<ComparisonCell> cells;
  cpu::Options options;
  options.threads = threads;
  for (const FormatTraits& f : all_formats()) {
    for (ScaleRule rule :
         {ScaleRule::kFloor, ScaleRule::kCeil, ScaleRule::kEven, ScaleRule::kRceil}) {
      QuantSpec spec = base;
      spec.format = f.format;
      spec.scale_rule = rule;
      const std::string error = cpu::fake_quantize(values.data(), DType::kF32, shape, spec,
                                                   DType::kF32, decoded.data(), options);
      if (!error.empty()) continue;
      cells.push_back({spec, bits_per_element(spec), measure_error(values, decoded)});
    }
  }
  return cells;
}

}  // namespace mx::study
