// --dtype and --tokenizer: the choices `mx export` and `mx quantize` give over the llama.cpp
// model GGUF they write for an output ending in .gguf (mx/train/model_gguf.h). Any other output
// has no use for them, so there they are a mistake rather than something to ignore.
#pragma once

#include <string>

#include "mx/core/dtype.h"

namespace mx::tools {

// The float type `dtype` names for the GGUF's unquantized matrices and embeddings, or a one-line
// reason: a bad name, or --dtype (other than its default f32) or --tokenizer given where
// `model_gguf` says the output is no model GGUF.
std::string gguf_model_float_type(const std::string& dtype, const std::string& tokenizer,
                                  bool model_gguf, DType* float_type);

}  // namespace mx::tools
