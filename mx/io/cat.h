// Building one-line error messages from strings and integers without long operator+ chains
// (which GCC 12 flags with false -Wrestrict warnings at -O3).
#pragma once

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

template <class... A>
std::string cat(const A&... a) {
  std::string s;
  (detail::put(s, a), ...);
  return s;
}

}  // namespace mx::io
