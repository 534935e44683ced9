// The tensor types a conversion moves between: safetensors dtype names, mxkit's float DType
// and ggml tensor types. Only types with the same bytes on both sides map to each other.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/core/dtype.h"

namespace mx::convert {

std::string_view safetensors_name(DType dtype);

// The ggml type holding a safetensors dtype's bytes unchanged (F32, F16, BF16, I8, I16, I32,
// I64, F64), or nullopt (U8, BOOL, the FP8/FP6/FP4 dtypes have none).
std::optional<uint32_t> ggml_type_of(std::string_view safetensors_dtype);
// The reverse, or "" for ggml types that are not plain arrays (MXFP4, Q4_0, ...).
std::string_view safetensors_dtype_of(uint32_t ggml_type);
// "F32", "MXFP4", "Q4_K", ... or "type N".
std::string ggml_type_name(uint32_t ggml_type);

// float32 values stored as `dtype` (bfloat16 and float16 round to nearest even).
std::vector<uint8_t> encode_floats(std::span<const float> values, DType dtype);

}  // namespace mx::convert
