#include "mx/io/read_file.h"

#include <fstream>
#include <sstream>

namespace mx::io {

std::string read_whole_file(const std::filesystem::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open " + path.string();
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return "error reading " + path.string();
  *out = std::move(s).str();
  return "";
}

}  // namespace mx::io
