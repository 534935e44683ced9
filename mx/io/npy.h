// NumPy .npy files (the format of numpy.lib.format): the magic "\x93NUMPY", a version byte pair,
// a little-endian header length (2 bytes in version 1.0, 4 in 2.0 and 3.0), a Python dict
// literal {'descr': ..., 'fortran_order': ..., 'shape': (...)} padded with spaces and ended by a
// newline, then the raw C-order data.
//
// Only the element types mxkit works with are supported, all little-endian and C-order:
//   float32 '<f4', float16 '<f2', uint8 '|u1' (also read as '<u1', as some C++ writers put it),
//   and bfloat16, which NumPy has no code for:
//   files from ml_dtypes say '<V2' (NumPy records the 2-byte type as raw void), a few tools
//   write 'bfloat16'; both read as bfloat16, and bfloat16 is written as '<V2' so that any NumPy
//   can load it (then .view(ml_dtypes.bfloat16)).
// Anything else (big-endian, Fortran order, structured or object arrays, other descrs) is an
// error that names the problem, as is a shape whose nonzero dimensions' product overflows (NumPy
// refuses those too). Every function returns "" on success, else a one-line reason; on failure
// the output argument is left unspecified.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/core/dtype.h"

namespace mx::io {

enum class NpyDType : uint8_t { kFloat32, kFloat16, kBFloat16, kUInt8 };

int npy_itemsize(NpyDType t);
// "float32", "float16", "bfloat16", "uint8".
std::string_view npy_dtype_name(NpyDType t);
// The descr written for `t`: "<f4", "<f2", "<V2", "|u1".
std::string_view npy_descr(NpyDType t);
// The float type of mx/core for the three float types; nullopt for uint8.
std::optional<DType> to_float_dtype(NpyDType t);
NpyDType from_float_dtype(DType t);

struct NpyArray {
  NpyDType dtype = NpyDType::kFloat32;
  std::vector<int64_t> shape;  // empty for a 0-d array (one element)
  std::vector<uint8_t> data;   // element_count() * itemsize bytes, C order, little-endian

  int64_t element_count() const;
};

// The whole contents of a .npy file.
std::string decode_npy(std::span<const uint8_t> file, NpyArray* out);
std::string encode_npy(const NpyArray& array, std::vector<uint8_t>* out);

// Reads and checks a file. The data is read only after the header and the file size agree.
std::string read_npy(const std::string& path, NpyArray* out);
// Writes atomically (mx/io/atomic_file.h): version 1.0, or 2.0 when the header is too long for
// 1.0's 2-byte length; the data starts at a multiple of 64 bytes.
std::string write_npy(const std::string& path, const NpyArray& array);

}  // namespace mx::io
