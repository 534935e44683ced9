#include "mx/io/output_folder.h"

#include <filesystem>

#include "mx/io/atomic_file.h"

namespace mx::io {

namespace fs = std::filesystem;

OutputFolder::~OutputFolder() {
  if (kept_) return;
  std::error_code ec;
  for (const std::string& f : added_files_) fs::remove(f, ec);
  // Innermost first; a folder that holds anything else (another process's files) stays.
  for (auto it = created_folders_.rbegin(); it != created_folders_.rend(); ++it) {
    if (fs::is_empty(*it, ec)) fs::remove(*it, ec);
  }
}

std::string OutputFolder::open(const std::string& path) {
  if (std::string e = check_output_folder(path); !e.empty()) return e;
  path_ = path;
  std::error_code ec;
  std::vector<fs::path> missing;
  fs::path folder = fs::path(path).lexically_normal();
  if (!folder.has_filename()) folder = folder.parent_path();  // "out/"
  for (fs::path p = folder; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (!fs::create_directory(*it, ec) && ec) {
      return "cannot create " + it->string() + ": " + ec.message();
    }
    created_folders_.push_back(it->string());
  }
  return "";
}

std::string OutputFolder::file(const std::string& name) {
  const std::string full = (fs::path(path_) / name).string();
  std::error_code ec;
  if (!fs::exists(full, ec)) added_files_.push_back(full);
  return full;
}

}  // namespace mx::io
