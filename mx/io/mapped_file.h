// A read-only memory mapping of a whole file (RAII). An empty file maps to an empty span.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace mx::io {

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps `path` read-only, replacing any earlier mapping. "" on success, else a one-line reason.
  std::string open(const std::string& path);
  void close();

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  bool is_open() const { return open_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool open_ = false;
};

}  // namespace mx::io
