// Building one-line error messages from strings and integers without long operator+ chains
// (which GCC 12 flags with false -Wrestrict warnings at -O3).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

namespace mx::io {

namespace detail {
inline void put(std::string& s, std::string_view v) {
  s.append(v);
}
template <class T>
requires std::is_integral_v<T>
void put(std::string& s, T v) {
  s.append(std::to_string(v));
}
}  // namespace detail

// A shape as messages print it: "[2, 3]".
inline std::string format_shape(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s.append(", ");
    s.append(std::to_string(shape[i]));
  }
  s.push_back(']');
  return s;
}

template <class... A>
std::string cat(const A&... a) {
  std::string s;
  (detail::put(s, a), ...);
  return s;
}

// Messages quote names and text from the file, which may hold any byte: control characters (a
// newline in a tensor name, say) become \xNN so that an error stays one line.
inline std::string one_line(std::string s) {
  bool clean = true;
  for (const char c : s) clean = clean && static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  if (clean) return s;
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

}  // namespace mx::io
