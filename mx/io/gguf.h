// GGUF files (ggml docs/gguf.md), versions 2 and 3 (same layout), little-endian:
//   "GGUF"  u32 version  u64 tensor_count  u64 kv_count
//   kv_count x { gguf_string key, u32 value_type, value }
//   tensor_count x { gguf_string name, u32 n_dims, u64 dims[n_dims] (fastest first),
//                    u32 ggml_type, u64 offset (from the data section, a multiple of the
//                    alignment) }
//   padding to `general.alignment` (a u32 KV, default 32), then the data section.
// A gguf_string is a u64 byte count and that many bytes (UTF-8, no terminator). Arrays are a
// u32 element type, a u64 count and the elements.
//
// Parsing is bounded: every count is checked against the bytes left before anything is
// allocated, arrays nest at most 8 deep, and errors name the problem and its byte offset.
// Tensor data: the types whose sizes are known here (F32, F16, BF16, MXFP4, the legacy and K
// quants, integer types) are checked to lie inside the data section without overlapping; other
// types are an error. Functions return "" on success, else a one-line reason.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/io/mapped_file.h"

namespace mx::io {

enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// ggml tensor types used by mxkit.
inline constexpr uint32_t kGgmlF32 = 0;
inline constexpr uint32_t kGgmlF16 = 1;
inline constexpr uint32_t kGgmlBF16 = 30;
inline constexpr uint32_t kGgmlMxfp4 = 39;

// Elements per block and bytes per block of a ggml type, or {0, 0} when unknown here.
std::pair<int64_t, int64_t> ggml_type_block(uint32_t type);

struct GgufValue;

// An array value. One read from a file keeps its elements as the file encodes them (checked when
// read) and decodes them one at a time on request: a 50 MB array then costs 50 MB, where a
// vector of decoded values would cost 40 bytes per element. One built in memory holds its values;
// encode_gguf checks that each has the array's type.
class GgufArray {
 public:
  GgufArray() = default;
  GgufArray(GgufType type, std::vector<GgufValue> items);

  GgufType type() const { return type_; }
  uint64_t size() const { return count_; }

  // Calls fn on each element in order, stopping at the first error it returns.
  std::string for_each(const std::function<std::string(const GgufValue&)>& fn) const;
  // The first min(n, size()) elements.
  std::vector<GgufValue> first(uint64_t n) const;

 private:
  friend class GgufArrayAccess;

  GgufType type_ = GgufType::kU8;
  uint64_t count_ = 0;
  std::vector<GgufValue> items_;  // built in memory
  std::vector<uint8_t> encoded_;  // read from a file
  bool from_file_ = false;
};

struct GgufValue {
  // The alternative's index is the GgufType.
  using Variant = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, GgufArray, uint64_t, int64_t, double>;
  Variant v;

  GgufType type() const { return static_cast<GgufType>(v.index()); }
};

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] varies fastest
  uint32_t type = kGgmlF32;
  uint64_t offset = 0;             // within the data section
  std::span<const uint8_t> bytes;  // into the file's mapping or buffer

  // Row-major (C order) shape: dims reversed.
  std::vector<int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  const std::vector<GgufKv>& kvs() const { return kvs_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufValue* find_kv(std::string_view key) const;
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  friend std::string open_gguf(const std::string& path, GgufFile* out);
  friend std::string parse_gguf(std::span<const uint8_t> file, GgufFile* out);

  MappedFile mapping_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::vector<GgufTensor> tensors_;
};

// Maps the file read-only; tensor bytes point into the mapping owned by `*out`.
std::string open_gguf(const std::string& path, GgufFile* out);
// A whole file in memory, which the caller keeps alive while `*out` is used.
std::string parse_gguf(std::span<const uint8_t> file, GgufFile* out);

struct GgufTensorToWrite {
  std::string name;
  std::vector<int64_t> dims;  // ggml order, fastest first
  uint32_t type = kGgmlF32;
  std::span<const uint8_t> bytes;
};

// Version 3. The alignment is taken from a "general.alignment" KV (which must be a u32 power of
// two) or is 32; each tensor's data starts at a multiple of it and the file is padded to one.
// Checks names (unique, 1 to 63 bytes as ggml stores them), keys (non-empty, unique), dims
// (positive count, at most 4), types and byte counts. Arrays of arrays are written, as the
// format allows, though ggml's reader (llama.cpp's) refuses them: mx's own files hold none.
std::string encode_gguf(std::span<const GgufKv> kvs, std::span<const GgufTensorToWrite> tensors,
                        std::vector<uint8_t>* out);
std::string write_gguf(const std::string& path, std::span<const GgufKv> kvs,
                       std::span<const GgufTensorToWrite> tensors);

// MXFP4 (type 39) tensors: `t` must pass check_mxfp4_rowwise. The 17-byte blocks go to
// `*storage`, which `out->bytes` points into.
std::string gguf_mxfp4_tensor(const std::string& name, const MxTensor& t,
                              std::vector<uint8_t>* storage, GgufTensorToWrite* out);
// The MxTensor (mxfp4_rowwise_spec()) of a type-39 tensor.
std::string load_gguf_mxfp4(const GgufTensor& t, MxTensor* out);

}  // namespace mx::io
