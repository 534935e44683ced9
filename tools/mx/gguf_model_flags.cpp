#include "tools/mx/gguf_model_flags.h"

#include <fmt/format.h>

#include <optional>

namespace mx::tools {

std::string gguf_model_float_type(const std::string& dtype, const std::string& tokenizer,
                                  bool model_gguf, DType* float_type) {
  const std::optional<DType> parsed = parse_dtype(dtype);
  if (!parsed) return fmt::format("--dtype {}: expected f32, f16 or bf16", dtype);
  if (!model_gguf && (*parsed != DType::kF32 || !tokenizer.empty())) {
    return "--dtype and --tokenizer apply to a .gguf output only";
  }
  *float_type = *parsed;
  return "";
}

}  // namespace mx::tools
