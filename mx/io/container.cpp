#include "mx/io/container.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "mx/io/cat.h"

namespace mx::io {
namespace {

bool ends_with_nocase(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), s.end() - static_cast<long>(suffix.size()),
                    [](char a, char b) { return std::tolower(a) == std::tolower(b); });
}

}  // namespace

std::string_view container_name(Container c) {
  switch (c) {
    case Container::kSafetensors:
      return "safetensors";
    case Container::kGguf:
      return "gguf";
    case Container::kLlama2c:
      return "llama2c";
  }
  return "safetensors";
}

Container guess_container(const std::string& path) {
  char magic[4] = {};
  std::ifstream f(path, std::ios::binary);
  if (f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0) return Container::kGguf;
  if (ends_with_nocase(path, ".bin")) return Container::kLlama2c;
  return Container::kSafetensors;
}

bool has_gguf_extension(const std::string& path) {
  return ends_with_nocase(path, ".gguf");
}

}  // namespace mx::io
