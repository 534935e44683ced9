// Output files that readers see either whole or not at all: the bytes go to a temporary file in
// the same folder (so rename stays on one file system), are flushed to disk, and then take the
// destination's name by rename.
//
// Outputs that are not regular files are written in place instead: a character device
// (/dev/null, /dev/stdout) or a FIFO is opened and written directly, since a rename would
// replace the device node with a regular file. A symbolic link is followed, and the file it
// names is replaced, so the link stays a link. A folder, a block device or a socket is an error.
//
// Temporaries are named ".NAME.tmp.PID.N.M": hidden from globs such as *.npy, and traceable to
// the process that made them, so that remove_stale_temporaries can tell a live one from one a
// killed process left behind.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mx::io {

// The checks a command runs before any work, so that a bad -o fails at once rather than after
// a long computation: `path`'s folder exists and is a folder, and `path` is not a folder, a
// block device or a socket. "" or a one-line reason.
std::string check_output_file(const std::string& path);
// For an output folder (created with its parents if absent): `path` is a folder, or absent with
// its nearest existing ancestor a folder; and that folder takes new files (one is made there and
// removed to see).
std::string check_output_folder(const std::string& path);

// One output being written. open() makes the temporary (or opens a device or FIFO), write()
// appends, commit() flushes it and gives it the destination's name. Destroyed uncommitted, it
// removes the temporary, leaving an existing destination as it was. While open, the temporary
// is also removed if the process dies of SIGINT, SIGTERM or SIGHUP (remove_temporaries_on_signals).
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile();

  std::string open(const std::string& path);
  std::string write(std::span<const uint8_t> bytes);
  std::string commit();

  // The name to write under for a writer that opens files by name (an external program).
  const std::string& write_path() const { return in_place_ ? target_ : temp_; }

 private:
  void discard();

  std::string target_;  // the destination, symbolic links followed
  std::string shown_;   // the destination as the caller named it, for messages
  std::string temp_;
  int fd_ = -1;
  int slot_ = -1;  // in the signal-cleanup table
  bool in_place_ = false;
};

// Writes `parts` one after another as the new contents of `path`. Returns "" on success, else a
// one-line reason naming `path`; on failure no temporary is left and an existing `path` is as it
// was. The new file gets mode 0666 minus the process umask, like any newly created file.
std::string write_file_atomically(const std::string& path,
                                  std::span<const std::span<const uint8_t>> parts);

// One contiguous buffer.
std::string write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

// Text (a report, a JSON document) as the file's bytes.
std::string write_text_atomically(const std::string& path, std::string_view text);

// Makes SIGINT, SIGTERM and SIGHUP remove the temporaries of open OutputFiles before the process
// dies of the signal as it would have. For programs (the `mx` command calls it at start); a
// library should not take over a process's signals by itself.
void remove_temporaries_on_signals();

// Adds `path`, a file or an empty folder this process made for an output that is not finished,
// to what remove_temporaries_on_signals removes. Returns the handle that keep_on_signals takes
// once the output is finished or cleaned up, or -1 when too many are registered (that path is
// then left to the caller alone).
int remove_on_signals(const std::string& path, bool is_folder);
void keep_on_signals(int handle);

// Removes from `folder` the temporaries of processes that no longer run (killed with SIGKILL, or
// a machine that lost power). Returns how many it removed.
int remove_stale_temporaries(const std::string& folder);

}  // namespace mx::io
