// Quantization error of a tensor against its original values.
#pragma once

#include <cstdint>
#include <span>

namespace mx::study {

struct ErrorStats {
  double rmse = 0;
  double sqnr_db = 0;  // 10 log10(sum x^2 / sum (x - q)^2); +inf when exact
  double max_abs = 0;
  int64_t count = 0;
  int64_t nonfinite = 0;  // decoded values that are NaN or Inf where the input was finite
};

ErrorStats measure_error(std::span<const float> original, std::span<const float> decoded);

}  // namespace mx::study
