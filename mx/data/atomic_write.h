// Writing a file so that readers see the old file or the whole new one, never a part: the
// bytes go to a temporary file beside it, are flushed to disk, and replace it by rename.
// (mx/io is getting a general write_file_atomically; this one serves mx/data until then.)
#pragma once

#include <filesystem>
#include <span>
#include <string>

namespace mx::data {

// `parts` are written one after another. Empty, or a one-line reason; on failure the target
// is untouched and no temporary file is left behind.
std::string write_atomically(const std::filesystem::path& path,
                             std::span<const std::span<const std::byte>> parts);

}  // namespace mx::data
