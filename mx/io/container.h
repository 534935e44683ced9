// Which kind of checkpoint file a path holds, so that one command can read them all.
#pragma once

#include <string>
#include <string_view>

namespace mx::io {

enum class Container { kSafetensors, kGguf, kLlama2c };

std::string_view container_name(Container c);  // "safetensors", "gguf", "llama2c"

// GGUF when the file starts with the GGUF magic; llama2.c when the name ends in ".bin" (those
// files have no magic); safetensors otherwise, so that a file that is none of them gets the
// safetensors reader's message. A file that cannot be read is left to the reader to report.
Container guess_container(const std::string& path);

// True when `path` ends in ".gguf" (any case): the output kind `mx quantize` writes.
bool has_gguf_extension(const std::string& path);

}  // namespace mx::io
