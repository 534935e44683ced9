// The shared data folder for tests that read it (MX_DATA_DIR): they skip when it is not set.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace mx::testing {

// $MX_DATA_DIR, or empty.
inline std::filesystem::path data_dir() {
  const char* d = std::getenv("MX_DATA_DIR");
  return d && *d ? std::filesystem::path(d) : std::filesystem::path();
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace mx::testing

#define REQUIRE_DATA_DIR()                                   \
  if (::mx::testing::data_dir().empty())                     \
  GTEST_SKIP() << "MX_DATA_DIR is not set: this test reads " \
                  "the shared data folder"
