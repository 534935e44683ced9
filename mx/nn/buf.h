// Memory that a backend owns: host memory for the CPU backend, device memory for the CUDA one.
// The model holds Bufs and hands them to the backend's ops; it never reads them directly, only
// through Backend::download.
#pragma once

#include <cstdint>

namespace mx::nn {

enum class BufType : uint8_t { kF32, kBF16, kU32, kU8 };

constexpr int64_t buf_type_bytes(BufType t) {
  return t == BufType::kF32 || t == BufType::kU32 ? 4 : t == BufType::kBF16 ? 2 : 1;
}

struct Buf {
  void* p = nullptr;
  int64_t n = 0;  // elements
  BufType type = BufType::kF32;

  bool empty() const { return p == nullptr; }
  int64_t bytes() const { return n * buf_type_bytes(type); }
  // Elements [offset, offset + count) as a Buf of their own; a view, not a copy. An offset of -1
  // (an absent parameter) gives an empty Buf.
  Buf at(int64_t offset, int64_t count) const {
    if (offset < 0 || p == nullptr) return {};
    return {static_cast<char*>(p) + offset * buf_type_bytes(type), count, type};
  }
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

}  // namespace mx::nn
