#include "mx/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace mx::io {
namespace {

// "what name: reason". The default argument reads errno before the message is built, since
// building it may call into the allocator.
std::string failure(std::string_view what, const std::string& name, int err = errno) {
  return std::string(what) + " " + name + ": " + std::strerror(err);
}

// A name of our own rather than mkstemp's, because mkstemp creates mode 0600 and ignores the
// umask; opening with O_EXCL and 0666 gives the permissions users expect of a new file. The
// leading dot keeps the temporary out of globs such as *.npy while it exists.
std::string temp_name(const std::filesystem::path& path, int attempt) {
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path dir = path.parent_path();
  // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string name = ".";
  name += path.filename().string();
  name += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
          std::to_string(attempt);
  return (dir.empty() ? std::filesystem::path(name) : dir / name).string();
}

std::string write_all(int fd, std::span<const uint8_t> bytes, const std::string& name) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0) return failure("cannot write", name, err);
    if (n == 0) return "cannot write " + name + ": no progress";
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return "";
}

// Makes the rename itself durable. Best effort: by now the destination has been replaced, so
// reporting a failure here would wrongly suggest that it had not.
void sync_directory(const std::filesystem::path& path) {
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string write_file_atomically(const std::string& path,
                                  std::span<const std::span<const uint8_t>> parts) {
  if (path.empty()) return "empty output path";
  const std::filesystem::path target(path);
  std::string temp;
  int fd = -1;
  for (int attempt = 0; fd < 0; ++attempt) {
    temp = temp_name(target, attempt);
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    const int err = errno;
    if (fd < 0 && (err != EEXIST || attempt >= 100)) {
      const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
      return failure("cannot create a file in", dir, err);
    }
  }
  std::string error;
  for (std::span<const uint8_t> part : parts) {
    error = write_all(fd, part, temp);
    if (!error.empty()) break;
  }
  if (error.empty() && ::fsync(fd) != 0) error = failure("cannot flush", temp);
  if (::close(fd) != 0 && error.empty()) error = failure("cannot close", temp);
  if (error.empty() && ::rename(temp.c_str(), path.c_str()) != 0) {
    error = failure("cannot replace", path);
  }
  if (!error.empty()) {
    ::unlink(temp.c_str());
    return error;
  }
  sync_directory(target);
  return "";
}

std::string write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  const std::span<const uint8_t> parts[] = {bytes};
  return write_file_atomically(path, parts);
}

}  // namespace mx::io
