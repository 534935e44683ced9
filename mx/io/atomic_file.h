// Replacing a file so that readers see either the old file or the whole new one, never a part:
// the bytes go to a temporary file in the same directory (so rename stays on one file system),
// are flushed to disk, and then take the destination's name by rename.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace mx::io {

// Writes `parts` one after another as the new contents of `path`. Returns "" on success, else a
// one-line reason; on failure the temporary file is removed and an existing `path` is left as
// it was. The new file gets mode 0666 minus the process umask, like any newly created file.
std::string write_file_atomically(const std::string& path,
                                  std::span<const std::span<const uint8_t>> parts);

// One contiguous buffer.
std::string write_file_atomically(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace mx::io
