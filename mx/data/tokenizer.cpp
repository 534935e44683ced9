#include "mx/data/tokenizer.h"

#include "mx/data/byte_tokenizer.h"
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

std::string load_tokenizer(std::string_view spec, const DataPaths& paths,
                           std::unique_ptr<Tokenizer>* out) {
  namespace fs = std::filesystem;
  fs::path path(spec);
  if (spec == "bytes") {
    *out = make_byte_tokenizer();
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
    return load_gpt2_tokenizer(path / "encoder.json", path / "vocab.bpe", out);
  }
  if (!fs::exists(path, ec)) return "tokenizer " + path.string() + " not found";
  // Read whole into memory: a device, a FIFO or an absurd file is refused rather than read.
  constexpr uintmax_t kMaxTokenizerBytes = uintmax_t{256} << 20;
  if (!fs::is_regular_file(path, ec) || fs::file_size(path, ec) > kMaxTokenizerBytes) {
    return "tokenizer " + path.string() + " is not a regular file of at most 256 MB";
  }
  if (path.filename() == "encoder.json") {
    return load_gpt2_tokenizer(path, path.parent_path() / "vocab.bpe", out);
  }
  if (path.extension() == ".model") return load_sentencepiece_tokenizer(path, out);
  if (path.extension() == ".bin") return load_llama2c_tokenizer(path, out);
  return "tokenizer " + path.string() +
         ": unknown kind (expected a SentencePiece .model, a llama2.c .bin, or GPT-2's "
         "encoder.json or its folder)";
}

}  // namespace mx::data
