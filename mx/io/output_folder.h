// An output folder that a command fills with several files, each written whole
// (atomic_file.h): opened before any work, so that a place it cannot write fails at once, and,
// when the command fails part-way, left as it was found: the files it added are removed, and so
// are the folders it created. Files that existed before are replaced whole as they are written
// and are not restored.
#pragma once

#include <string>
#include <vector>

namespace mx::io {

class OutputFolder {
 public:
  OutputFolder() = default;
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;
  ~OutputFolder();

  // Creates `path` with its parents where absent, and checks that a file can be made in it.
  // "" or a one-line reason.
  std::string open(const std::string& path);
  // Where to write `name` (a path relative to the folder): recorded, unless it exists already,
  // as a file to remove if the command fails.
  std::string file(const std::string& name);
  const std::string& path() const { return path_; }
  // The command succeeded: what it wrote stays.
  void keep() { kept_ = true; }

 private:
  std::string path_;
  std::vector<std::string> added_files_;
  std::vector<std::string> created_folders_;  // outermost first
  bool kept_ = false;
};

}  // namespace mx::io
