#include "mx/io/output_folder.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "mx/io/atomic_file.h"

namespace mx::io {

namespace fs = std::filesystem;

void OutputFolder::forget_on_signals() {
  for (const int handle : signal_handles_) keep_on_signals(handle);
  signal_handles_.clear();
}

OutputFolder::~OutputFolder() {
  if (committed_) return;
  std::error_code ec;
  for (const auto& [staging, final_path] : staged_) fs::remove(staging, ec);
  // Innermost first; a folder that holds anything else (another process's files) stays.
  for (auto it = created_folders_.rbegin(); it != created_folders_.rend(); ++it) {
    if (fs::is_empty(*it, ec)) fs::remove(*it, ec);
  }
  forget_on_signals();
}

std::string OutputFolder::open(const std::string& path) {
  if (std::string e = check_output_folder(path); !e.empty()) return e;
  path_ = path;
  std::error_code ec;
  fs::path folder = fs::path(path).lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // "out/"
  std::vector<fs::path> missing;
  for (fs::path p = folder; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (!fs::create_directory(*it, ec) && ec) {
      return "cannot create " + it->string() + ": " + ec.message();
    }
    created_folders_.push_back(it->string());
    signal_handles_.push_back(remove_on_signals(it->string(), /*is_folder=*/true));
  }
  return "";
}

std::string OutputFolder::file(const std::string& name) {
  const fs::path dir(path_);
  // Hidden, this process's, and ending as `name` ends (writers look at the extension).
  const std::string staging = (dir / (".staged." + std::to_string(getpid()) + "." + name)).string();
  staged_.emplace_back(staging, (dir / name).string());
  signal_handles_.push_back(remove_on_signals(staging, /*is_folder=*/false));
  return staging;
}

std::string OutputFolder::named(std::string message) const {
  for (const auto& [staging, final_path] : staged_) {
    for (size_t at = message.find(staging); at != std::string::npos;
         at = message.find(staging, at + final_path.size())) {
      message.replace(at, staging.size(), final_path);
    }
  }
  return message;
}

std::string OutputFolder::commit() {
  std::error_code ec;
  for (const auto& [staging, final_path] : staged_) {
    if (!fs::exists(staging, ec)) return "cannot write " + final_path + ": it was not written";
  }
  for (const auto& [staging, final_path] : staged_) {
    if (std::rename(staging.c_str(), final_path.c_str()) != 0) {
      return "cannot write " + final_path + ": " + std::strerror(errno);
    }
  }
  committed_ = true;
  forget_on_signals();
  return "";
}

}  // namespace mx::io
