#include "mx/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace mx::io {

MappedFile::~MappedFile() {
  close();
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      open_(std::exchange(other.open_, false)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    close();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    open_ = std::exchange(other.open_, false);
  }
  return *this;
}

void MappedFile::close() {
  if (data_ != nullptr && size_ > 0) {
    ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  data_ = nullptr;
  size_ = 0;
  open_ = false;
}

std::string MappedFile::open(const std::string& path) {
  close();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    std::string err = "cannot open ";
    err += path;
    err += ": ";
    err += std::strerror(errno);
    return err;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    std::string err = "cannot stat ";
    err += path;
    err += ": ";
    err += std::strerror(errno);
    ::close(fd);
    return err;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    std::string err = path;
    err += " is not a regular file";
    return err;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string err = "cannot map ";
      err += path;
      err += ": ";
      err += std::strerror(errno);
      ::close(fd);
      return err;
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  size_ = size;
  open_ = true;
  return "";
}

}  // namespace mx::io
