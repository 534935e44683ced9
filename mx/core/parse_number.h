// A whole string as one decimal integer: no sign where T is unsigned, no spaces, no trailing
// text, no overflow. nullopt otherwise.
#pragma once

#include <charconv>
#include <optional>
#include <string_view>

namespace mx {

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || text.empty()) return std::nullopt;
  return value;
}

}  // namespace mx
