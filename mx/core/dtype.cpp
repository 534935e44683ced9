#include "mx/core/dtype.h"

#include <cstring>

#include "mx/core/half.h"

namespace mx {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32:
      return "float32";
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  if (name == "float32" || name == "f32" || name == "fp32") return DType::kF32;
  if (name == "bfloat16" || name == "bf16") return DType::kBF16;
  if (name == "float16" || name == "f16" || name == "fp16") return DType::kF16;
  return std::nullopt;
}

float load_as_float(const void* data, DType dtype, int64_t i) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (dtype == DType::kF32) {
    float v;
    std::memcpy(&v, bytes + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, bytes + 2 * i, 2);
  return dtype == DType::kBF16 ? bf16_to_float(h) : fp16_to_float(h);
}

}  // namespace mx
