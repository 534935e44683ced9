#include "mx/io/content_checksum.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "mx/core/rounding.h"

namespace mx::io {
namespace {

// Reads 8 bytes at a time (a byte-wise hash would take seconds on a 124M-parameter checkpoint);
// every word goes through SplitMix64's finalizer, chained.
class Hasher {
 public:
  void add(std::span<const uint8_t> bytes) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      mix(w);
    }
    uint64_t tail = 0;
    if (i < bytes.size()) std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
    mix(tail ^ (uint64_t(bytes.size()) << 56));
  }
  void add(std::string_view s) {
    add(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }
  void add(std::span<const int64_t> shape) {
    mix(shape.size());
    for (const int64_t d : shape) mix(static_cast<uint64_t>(d));
  }
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h_));
    return buf;
  }

 private:
  void mix(uint64_t w) { h_ = splitmix64_mix(h_ ^ w) + 0x9E3779B97F4A7C15ull; }
  uint64_t h_ = 0x6D786B6974ull;
};

struct TensorView {
  std::string_view name, dtype;
  std::span<const int64_t> shape;
  std::span<const uint8_t> bytes;
};

std::string checksum_of(std::vector<TensorView> tensors,
                        const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  Hasher h;
  for (const TensorView& t : tensors) {
    h.add(t.name);
    h.add(t.dtype);
    h.add(t.shape);
    h.add(t.bytes);
  }
  for (const auto& [key, value] : metadata) {  // std::map: in key order
    if (key == kChecksumKey) continue;
    h.add(key);
    h.add(value);
  }
  return h.hex();
}

}  // namespace

void add_checksum(std::span<const TensorToWrite> tensors,
                  std::map<std::string, std::string>* metadata) {
  std::vector<TensorView> views;
  for (const TensorToWrite& t : tensors) views.push_back({t.name, t.dtype, t.shape, t.bytes});
  (*metadata)[std::string(kChecksumKey)] = checksum_of(std::move(views), *metadata);
}

void refresh_checksum(std::span<const TensorToWrite> tensors,
                      std::map<std::string, std::string>* metadata) {
  if (metadata->count(std::string(kChecksumKey)) != 0) add_checksum(tensors, metadata);
}

std::string verify_checksum(const SafetensorsFile& file) {
  const auto it = file.metadata().find(std::string(kChecksumKey));
  if (it == file.metadata().end()) return "";
  std::vector<TensorView> views;
  for (const SafetensorsTensor& t : file.tensors()) {
    views.push_back({t.name, t.dtype, t.shape, t.bytes});
  }
  if (checksum_of(std::move(views), file.metadata()) != it->second) {
    return "checksum mismatch: the file is damaged (or was written by an mxkit older than its "
           "checksum rule)";
  }
  return "";
}

}  // namespace mx::io
