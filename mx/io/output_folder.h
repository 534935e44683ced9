// An output folder that a command fills with several files: opened before any work, so that a
// place it cannot write fails at once; each file written under a hidden staging name, and all
// of them given their names only when the command has written every one (commit). A command
// that fails part-way therefore leaves the folder as it found it: files there before keep their
// contents, its staged files are removed, and so are the folders it created. In a program that
// called remove_temporaries_on_signals (atomic_file.h), SIGINT, SIGTERM and SIGHUP remove them
// too.
#pragma once

#include <string>
#include <utility>
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
  // Where to write the file `name` (a name in the folder, extension kept): a staging path that
  // commit() renames to `name`.
  std::string file(const std::string& name);
  const std::string& path() const { return path_; }
  // `message` (a writer's error) with each staging path replaced by the file's own name.
  std::string named(std::string message) const;
  // Gives every staged file its name. "" or a one-line reason (a file not written, a rename
  // refused).
  std::string commit();

 private:
  std::string path_;
  std::vector<std::pair<std::string, std::string>> staged_;  // staging path, final path
  std::vector<std::string> created_folders_;                 // outermost first
  std::vector<int> signal_handles_;                          // for keep_on_signals
  bool committed_ = false;

  void forget_on_signals();
};

}  // namespace mx::io
