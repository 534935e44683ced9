// Typed access to GGUF KVs (gguf.h): building values, and reading a KV of a file as the type a
// reader needs. Readers of model metadata take any integer type for a count, as files written
// by different tools store them as u32, i32 or u64.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mx/io/gguf.h"

namespace mx::io {

GgufKv gguf_kv(std::string key, GgufValue::Variant value);
GgufValue gguf_string_array(const std::vector<std::string>& items);
GgufValue gguf_f32_array(const std::vector<float>& items);
GgufValue gguf_i32_array(const std::vector<int32_t>& items);

// The value of an integer KV (any of the eight integer types), or nullopt.
std::optional<int64_t> gguf_integer(const GgufValue& v);
// The value of an f32, f64 or integer KV, or nullopt.
std::optional<double> gguf_number(const GgufValue& v);

// Each function reads `key` of `file`: "" and the value when the KV is there with a suitable
// type; a one-line reason naming the key when its type is wrong or, where `required`, it is
// missing (a missing optional KV leaves `*out` as it was).
std::string read_gguf_string(const GgufFile& file, std::string_view key, bool required,
                             std::string* out);
std::string read_gguf_integer(const GgufFile& file, std::string_view key, bool required,
                              int64_t* out);
std::string read_gguf_number(const GgufFile& file, std::string_view key, bool required,
                             double* out);
std::string read_gguf_bool(const GgufFile& file, std::string_view key, bool required, bool* out);
std::string read_gguf_strings(const GgufFile& file, std::string_view key, bool required,
                              std::vector<std::string>* out);
std::string read_gguf_floats(const GgufFile& file, std::string_view key, bool required,
                             std::vector<float>* out);
// Integer arrays of any integer element type.
std::string read_gguf_integers(const GgufFile& file, std::string_view key, bool required,
                               std::vector<int64_t>* out);

}  // namespace mx::io
