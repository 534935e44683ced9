#include "mx/convert/dtypes.h"

#include <cstring>

#include "mx/core/half.h"
#include "mx/io/gguf.h"

namespace mx::convert {
namespace {

struct PlainType {
  std::string_view safetensors;
  uint32_t ggml;
};
constexpr PlainType kPlainTypes[] = {
    {"F32", io::kGgmlF32},
    {"F16", io::kGgmlF16},
    {"BF16", io::kGgmlBF16},
    {"I8", 24},
    {"I16", 25},
    {"I32", 26},
    {"I64", 27},
    {"F64", 28},
};

}  // namespace

std::string_view safetensors_name(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kBF16:
      return "BF16";
    case DType::kF16:
      return "F16";
  }
  return "F32";
}

std::optional<uint32_t> ggml_type_of(std::string_view safetensors_dtype) {
  for (const PlainType& p : kPlainTypes) {
    if (p.safetensors == safetensors_dtype) return p.ggml;
  }
  return std::nullopt;
}

std::string_view safetensors_dtype_of(uint32_t ggml_type) {
  for (const PlainType& p : kPlainTypes) {
    if (p.ggml == ggml_type) return p.safetensors;
  }
  return "";
}

std::string ggml_type_name(uint32_t ggml_type) {
  static constexpr std::pair<uint32_t, std::string_view> kNames[] = {
      {2, "Q4_0"},  {3, "Q4_1"},  {6, "Q5_0"},  {7, "Q5_1"},  {8, "Q8_0"},  {9, "Q8_1"},
      {10, "Q2_K"}, {11, "Q3_K"}, {12, "Q4_K"}, {13, "Q5_K"}, {14, "Q6_K"}, {15, "Q8_K"},
  };
  if (ggml_type == io::kGgmlMxfp4) return "MXFP4";
  if (std::string_view s = safetensors_dtype_of(ggml_type); !s.empty()) return std::string(s);
  for (const auto& [type, name] : kNames) {
    if (type == ggml_type) return std::string(name);
  }
  return "type " + std::to_string(ggml_type);
}

std::vector<uint8_t> encode_floats(std::span<const float> values, DType dtype) {
  std::vector<uint8_t> out(values.size() * static_cast<size_t>(dtype_size(dtype)));
  if (dtype == DType::kF32) {
    if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
    return out;
  }
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t h = dtype == DType::kBF16 ? float_to_bf16(values[i]) : float_to_fp16(values[i]);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}

}  // namespace mx::convert
