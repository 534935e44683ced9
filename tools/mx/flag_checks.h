// Validators for numeric flags, attached with CLI::Option::check. CLI11's own NonNegativeNumber
// and Range let "nan" through (every comparison with NaN is false) and read "-1" into an
// unsigned option as 2^64 - 1; these parse the text themselves and refuse both.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <limits>

namespace mx::tools {

// A decimal integer in [lo, hi], with no sign for lo >= 0.
CLI::Validator integer_in(int64_t lo, int64_t hi = std::numeric_limits<int64_t>::max());
// A decimal integer from 0 to 2^64 - 1 (seeds).
CLI::Validator unsigned_integer();
// A finite number in [lo, hi].
CLI::Validator finite_in(double lo, double hi = std::numeric_limits<double>::max());

// The thread-count flag every command shares: 0 (all) to kMaxThreads.
inline constexpr int64_t kMaxThreads = 1024;
CLI::Validator thread_count();

}  // namespace mx::tools
