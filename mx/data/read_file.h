// A whole file as bytes, for the small vocabulary files the tokenizers read at once.
#pragma once

#include <filesystem>
#include <string>

namespace mx::data {

// "" and the bytes in `*out`, or "cannot open PATH".
std::string read_whole_file(const std::filesystem::path& path, std::string* out);

}  // namespace mx::data
