// safetensors files (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of a JSON object (padded with spaces) mapping each tensor name to
//   {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// with offsets relative to the data buffer that follows the header, plus an optional
// "__metadata__" object of string -> string. Then the data buffer, C order, little-endian.
//
// The reader is as strict as the reference implementation: N at most 100,000,000 and within the
// file; the header starts with '{'; every entry has exactly dtype/shape/data_offsets of the
// right JSON types; a known dtype; shape * element size equal to end - begin (sub-byte dtypes
// must fill whole bytes) without overflow; begin <= end; the tensors tile the data buffer with
// no overlap, no gap and nothing after the last one; no duplicate names. Every function returns
// "" on success, else a one-line reason that names the problem and, where there is one, the byte
// offset in the file; on failure the output is left empty.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/core/dtype.h"
#include "mx/io/mapped_file.h"

namespace mx::io {

// Size of one element of a safetensors dtype in bits (F4 is 4, F6_E2M3 and F6_E3M2 are 6), or 0
// for an unknown name. Known: BOOL U8 I8 U16 I16 F16 BF16 U32 I32 F32 U64 I64 F64 F8_E4M3
// F8_E5M2 F8_E8M0 F4 F6_E2M3 F6_E3M2.
int safetensors_dtype_bits(std::string_view dtype);

// The float DType of F32, BF16 and F16 tensors (the dtypes mxkit quantizes), else nullopt.
std::optional<DType> safetensors_float_dtype(std::string_view dtype);

// Bytes of a tensor of `shape` and `dtype`, or a reason in `error` (unknown dtype, negative
// dimension, overflow, a sub-byte dtype that does not fill whole bytes).
uint64_t safetensors_byte_size(std::string_view dtype, std::span<const int64_t> shape,
                               std::string* error);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // points into the SafetensorsFile's mapping or buffer
};

class SafetensorsFile {
 public:
  // In file order (ascending data offset).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The tensor called `name`, or nullptr (a binary search: files may hold many thousands).
  const SafetensorsTensor* find(std::string_view name) const;

 private:
  void index_names();

  friend std::string open_safetensors(const std::string& path, SafetensorsFile* out);
  friend std::string parse_safetensors(std::span<const uint8_t> file, SafetensorsFile* out);

  MappedFile mapping_;
  std::vector<SafetensorsTensor> tensors_;
  std::vector<size_t> by_name_;  // indices into tensors_, in name order
  std::map<std::string, std::string> metadata_;
};

// Maps `path` read-only and parses it; the tensors' bytes point into the mapping, which lives as
// long as `*out`. A file that carries an mxkit checksum (io/content_checksum.h) is refused when
// its contents do not match it, so no reader can use a damaged file.
std::string open_safetensors(const std::string& path, SafetensorsFile* out);

// Parses a whole file held in memory; the tensors' bytes point into `file`, which the caller
// keeps alive while `*out` is used. Checks the checksum as open_safetensors does.
std::string parse_safetensors(std::span<const uint8_t> file, SafetensorsFile* out);

struct TensorToWrite {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;
};

// The whole file in memory: the header (padded with spaces so the data starts at a multiple of
// 8), then each tensor's bytes in the order given. Checks names (non-empty, unique, not
// "__metadata__"), dtypes and byte counts.
std::string encode_safetensors(std::span<const TensorToWrite> tensors,
                               const std::map<std::string, std::string>& metadata,
                               std::vector<uint8_t>* out);

// As encode_safetensors, written atomically (mx/io/atomic_file.h) without copying the data.
std::string write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata);

}  // namespace mx::io
