// libFuzzer target: a model GGUF (llama.cpp's layout, nn/gguf_model.h) loaded as `mx eval` and
// `mx generate` load it, one forward pass, and its tokenizer (tokenizer.ggml.*) read and run on
// a few characters. Every tensor is checked against the config before the model is allocated,
// so a mutated config cannot ask for more memory than the file holds.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_model.h"
#include "fuzz/fuzz_util.h"
#include "mx/data/gguf_tokenizer.h"
#include "mx/io/gguf.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/gguf_model.h"

namespace {

using mx::fuzz::fail;

void load_and_run(const mx::io::GgufFile& file) {
  mx::nn::LoadedModel loaded;
  const std::string e =
      mx::nn::load_gguf_model(file, "fuzz.gguf", &loaded, std::make_unique<mx::nn::CpuBackend>(1));
  mx::fuzz::check_error(e);
  if (!e.empty()) return;
  mx::fuzz::check_loaded_model(loaded);
}

void tokenize(const mx::io::GgufFile& file) {
  std::unique_ptr<mx::data::Tokenizer> tokenizer;
  const std::string e = mx::data::tokenizer_from_gguf(file, &tokenizer);
  mx::fuzz::check_error(e);
  if (!e.empty()) return;
  if (tokenizer == nullptr) fail("tokenizer_from_gguf gave no tokenizer and no error");
  const std::vector<uint32_t> ids = tokenizer->encode("Once upon a time");
  mx::fuzz::touch(tokenizer->decode(ids));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  mx::io::GgufFile file;
  if (!mx::io::parse_gguf(std::span(data, size), &file).empty()) return 0;
  load_and_run(file);
  tokenize(file);
  return 0;
}
