// Synthetic tensors for comparing formats, and the format x scale-rule comparison that the
// demo prints (the Yang et al. design-space comparison, on synthetic data).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "mx/core/quant_spec.h"
#include "mx/study/error_stats.h"

namespace mx::study {

enum class Distribution {
  kGaussian,     // N(0, 1)
  kHeavyTailed,  // Student-t with 3 degrees of freedom, plus 0.1% outliers at 50x
  kUniform,      // U(-1, 1)
};

std::string_view distribution_name(Distribution d);
std::vector<float> synthetic_tensor(Distribution d, int64_t count, uint64_t seed);

struct ComparisonCell {
  QuantSpec spec;
  double bits_per_element;
  ErrorStats error;
};

// Quantizes `values` (shape [count / 1024, 1024] when count allows, else [count]) with every
// format under every scale rule, keeping the rest of `base` (block size, rounding...).
std::vector<ComparisonCell> compare_formats(const std::vector<float>& values, const QuantSpec& base,
                                            int threads);

}  // namespace mx::study
