// Floating-point storage types of plain (unquantized) tensors.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mx {

enum class DType : uint8_t { kF32, kBF16, kF16 };

constexpr int dtype_size(DType t) {
  return t == DType::kF32 ? 4 : 2;
}
std::string_view dtype_name(DType t);
std::optional<DType> parse_dtype(std::string_view name);

// Reads element i of a buffer of `dtype` as float32 (exact for all three types).
float load_as_float(const void* data, DType dtype, int64_t i);

}  // namespace mx
