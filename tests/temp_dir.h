// A fresh folder under the system's temporary directory, removed with everything in it when the
// object goes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace mx::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "mx_test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    path = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace mx::test
