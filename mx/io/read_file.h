// A whole file as bytes, for the small files read at once (tokenizer vocabularies, JSON).
#pragma once

#include <filesystem>
#include <string>

namespace mx::io {

// "" and the bytes in `*out`, or "cannot open PATH" / "error reading PATH".
std::string read_whole_file(const std::filesystem::path& path, std::string* out);

}  // namespace mx::io
