#include "mx/data/paths.h"

#include <cstdlib>

namespace mx::data {
namespace {

std::filesystem::path env_path(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? std::filesystem::path(v) : std::filesystem::path();
}

}  // namespace

DataPaths data_paths_from_environment() {
  DataPaths p;
  p.data_dir = env_path("MX_DATA_DIR");
  p.cache_dir = env_path("MX_CACHE_DIR");
  if (p.cache_dir.empty()) {
    if (auto xdg = env_path("XDG_CACHE_HOME"); !xdg.empty()) {
      p.cache_dir = xdg / "mxkit";
    } else if (auto home = env_path("HOME"); !home.empty()) {
      p.cache_dir = home / ".cache" / "mxkit";
    }
  }
  return p;
}

}  // namespace mx::data
