#include "mx/study/error_stats.h"

#include <cmath>
#include <limits>

namespace mx::study {

ErrorStats measure_error(std::span<const float> original, std::span<const float> decoded) {
  ErrorStats s;
  double signal = 0, noise = 0;
  for (size_t i = 0; i < original.size(); ++i) {
    const double x = original[i], q = decoded[i];
    if (!std::isfinite(x)) continue;
    if (!std::isfinite(q)) {
      ++s.nonfinite;
      continue;
    }
    const double d = x - q;
    signal += x * x;
    noise += d * d;
    s.max_abs = std::max(s.max_abs, std::fabs(d));
    ++s.count;
  }
  s.rmse = s.count ? std::sqrt(noise / double(s.count)) : 0;
  s.sqnr_db = noise > 0 ? 10 * std::log10(signal / noise) : std::numeric_limits<double>::infinity();
  return s;
}

}  // namespace mx::study
