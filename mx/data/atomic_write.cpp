#include "mx/data/atomic_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace mx::data {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

bool write_all(int fd, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(size_t(n));
  }
  return true;
}

}  // namespace

std::string write_atomically(const std::filesystem::path& path,
                             std::span<const std::span<const std::byte>> parts) {
  // Same folder, so that rename() is atomic (one file system).
  std::string temp = path.string() + ".tmp.XXXXXX";
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) return "cannot create a temporary file beside " + path.string() + ": " + errno_text();
  std::string error;
  for (auto part : parts) {
    if (!write_all(fd, part)) {
      error = "cannot write " + temp + ": " + errno_text();
      break;
    }
  }
  if (error.empty() && ::fsync(fd) != 0) error = "cannot flush " + temp + ": " + errno_text();
  // mkstemp makes 0600 files; give the result the usual permissions.
  if (error.empty() && ::fchmod(fd, 0644) != 0)
    error = "cannot chmod " + temp + ": " + errno_text();
  if (::close(fd) != 0 && error.empty()) error = "cannot close " + temp + ": " + errno_text();
  if (error.empty() && ::rename(temp.c_str(), path.c_str()) != 0) {
    error = "cannot rename " + temp + " to " + path.string() + ": " + errno_text();
  }
  if (!error.empty()) ::unlink(temp.c_str());
  return error;
}

}  // namespace mx::data
