#include "tools/mx/flag_checks.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

namespace mx::tools {
namespace {

template <typename T>
bool parse_whole(const std::string& text, T* value) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return !text.empty() && ec == std::errc() && ptr == end;
}

std::string number_text(double v) {
  if (v == std::numeric_limits<double>::max()) return "any larger value";
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

}  // namespace

CLI::Validator integer_in(int64_t lo, int64_t hi) {
  const std::string range =
      hi == std::numeric_limits<int64_t>::max()
          ? "an integer of at least " + std::to_string(lo)
          : "an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        int64_t v = 0;
        if (!parse_whole(text, &v) || v < lo || v > hi)
          return "expected " + range + ", got '" + text + "'";
        return "";
      },
      "INT", "integer_in");
}

CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        if (!parse_whole(text, &v)) {
          return "expected an integer from 0 to 18446744073709551615, got '" + text + "'";
        }
        return "";
      },
      "UINT", "unsigned_integer");
}

CLI::Validator finite_in(double lo, double hi) {
  const std::string range =
      "a finite number from " + number_text(lo) +
      (hi == std::numeric_limits<double>::max() ? " up" : " to " + number_text(hi));
  return CLI::Validator(
      [lo, hi, range](std::string& text) -> std::string {
        // strtod rather than from_chars: GCC 12's from_chars for double is complete, but strtod
        // also takes the hexadecimal floats that users of a numerics library may write.
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v) || v < lo ||
            v > hi) {
          return "expected " + range + ", got '" + text + "'";
        }
        return "";
      },
      "NUMBER", "finite_in");
}

CLI::Validator thread_count() {
  return integer_in(0, kMaxThreads);
}

}  // namespace mx::tools
