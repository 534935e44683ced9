#include "mx/data/tokenizer.h"

#include "mx/data/byte_tokenizer.h"
#include "mx/data/gguf_tokenizer.h"
#include "mx/data/gpt2_tokenizer.h"
#include "mx/data/llama2c_tokenizer.h"
#include "mx/data/sentencepiece_tokenizer.h"

namespace mx::data {

std::string check_ids(const Tokenizer& tokenizer, std::span<const uint32_t> ids) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] >= tokenizer.vocab_size()) {
      return "token id " + std::to_string(ids[i]) + " (position " + std::to_string(i) +
             ") is not below the vocabulary size " + std::to_string(tokenizer.vocab_size());
    }
  }
  return "";
}

std::string check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab) {
  const int64_t tokens = tokenizer.vocab_size();
  if (tokens > model_vocab) {
    return "the tokenizer has " + std::to_string(tokens) + " tokens, more than the model's " +
           std::to_string(model_vocab);
  }
  if (tokenizer.kind() == "llama2c" && tokens != model_vocab) {
    return "the llama2.c tokenizer has " + std::to_string(tokens) + " pieces and the model " +
           std::to_string(model_vocab) +
           " ids; such a tokenizer holds one piece per id (a truncated file?)";
  }
  return "";
}

std::string resolve_tokenizer(std::string_view spec, const DataPaths& paths, TokenizerSource* out) {
  namespace fs = std::filesystem;
  using Kind = TokenizerSource::Kind;
  fs::path path(spec);
  if (spec == "bytes") {
    *out = {Kind::kBytes, {}};
    return "";
  }
  if (spec == "gpt2") {
    if (paths.data_dir.empty()) {
      return "tokenizer 'gpt2' is looked up in MX_DATA_DIR, which is not set";
    }
    path = paths.data_dir / "gpt2";
  }
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *out = {Kind::kGpt2, path / "encoder.json"};
    return "";
  }
  if (!fs::exists(path, ec)) return "tokenizer " + path.string() + " not found";
  // Read whole into memory: a device, a FIFO or an absurd file is refused rather than read.
  // (A GGUF model is mapped, and only its vocabulary read.)
  constexpr uintmax_t kMaxTokenizerBytes = uintmax_t{256} << 20;
  if (path.extension() == ".gguf" && fs::is_regular_file(path, ec)) {
    *out = {Kind::kGguf, path};
    return "";
  }
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) > kMaxTokenizerBytes) {
    return "tokenizer " + path.string() + " is not a regular file of at most 256 MB";
  }
  if (path.filename() == "encoder.json") {
    *out = {Kind::kGpt2, path};
  } else if (path.extension() == ".model") {
    *out = {Kind::kSentencePiece, path};
  } else if (path.extension() == ".bin") {
    *out = {Kind::kLlama2c, path};
  } else {
    return "tokenizer " + path.string() +
           ": unknown kind (expected a SentencePiece .model, a llama2.c .bin, a GGUF model, or "
           "GPT-2's encoder.json or its folder)";
  }
  return "";
}

std::string load_tokenizer(std::string_view spec, const DataPaths& paths,
                           std::unique_ptr<Tokenizer>* out) {
  TokenizerSource source;
  if (std::string e = resolve_tokenizer(spec, paths, &source); !e.empty()) return e;
  switch (source.kind) {
    case TokenizerSource::Kind::kBytes:
      *out = make_byte_tokenizer();
      return "";
    case TokenizerSource::Kind::kGpt2:
      return load_gpt2_tokenizer(source.path, source.path.parent_path() / "vocab.bpe", out);
    case TokenizerSource::Kind::kSentencePiece:
      return load_sentencepiece_tokenizer(source.path, out);
    case TokenizerSource::Kind::kLlama2c:
      return load_llama2c_tokenizer(source.path, out);
    case TokenizerSource::Kind::kGguf:
      return load_gguf_tokenizer(source.path, out);
  }
  return "unknown tokenizer kind";
}

}  // namespace mx::data
