// Helpers shared by the fuzz targets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace mx::fuzz {

// Reads every byte of `bytes` into a sum the optimizer cannot drop, so that AddressSanitizer
// checks that a span handed out by a reader lies inside the input.
inline void touch(std::span<const uint8_t> bytes) {
  uint64_t sum = 0;
  for (const uint8_t b : bytes) sum += b;
  volatile uint64_t sink = sum;
  (void)sink;
}

inline void touch(std::string_view s) {
  touch(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

// A broken invariant of a reader (as opposed to a rejected input): report it and abort, which
// libFuzzer records as a crash with its reproducer.
[[noreturn]] inline void fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant broken: %s %.*s\n", what, static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

// A reader's error must be one line: the CLI prints it as is.
inline void check_error(std::string_view e) {
  if (e.find('\n') != std::string_view::npos) fail("multi-line error:", e);
}

}  // namespace mx::fuzz
