// One small interface over the three tokenizers the project trains with: SentencePiece models
// (sentencepiece_tokenizer.h), GPT-2's byte-level BPE (gpt2_tokenizer.h) and llama2.c's
// tokenizer.bin (llama2c_tokenizer.h).
//
// encode() turns text into ids without adding BOS/EOS: callers that delimit documents add
// them (see encode_documents in token_dataset.h). Implementations are safe to call from
// several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/data/paths.h"

namespace mx::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "sentencepiece", "gpt2", "llama2c" or "bytes".
  virtual std::string_view kind() const = 0;
  virtual uint32_t vocab_size() const = 0;
  virtual std::vector<uint32_t> encode(std::string_view text) const = 0;
  // Ids must be < vocab_size() (check_ids says which one is not); others decode to nothing.
  virtual std::string decode(std::span<const uint32_t> ids) const = 0;
  // The token that starts (bos) or ends (eos) a document, where the format has one. GPT-2's
  // <|endoftext|> is both.
  virtual std::optional<uint32_t> bos_id() const = 0;
  virtual std::optional<uint32_t> eos_id() const = 0;
};

// Empty when every id is < tokenizer.vocab_size(), else a line naming the first that is not.
std::string check_ids(const Tokenizer& tokenizer, std::span<const uint32_t> ids);

// Empty when `tokenizer` can serve a model of `model_vocab` ids, else why not: its ids must be
// the model's, and a llama2.c tokenizer, whose file holds no count (run.c reads one piece per
// model id), must have exactly one piece per id.
std::string check_tokenizer_fits_model(const Tokenizer& tokenizer, int64_t model_vocab);

// What a tokenizer spec names, and its file (GPT-2: encoder.json, with vocab.bpe beside it).
struct TokenizerSource {
  enum class Kind { kBytes, kGpt2, kSentencePiece, kLlama2c, kGguf };
  Kind kind = Kind::kBytes;
  std::filesystem::path path;
};

// Finds the file `spec` names (see load_tokenizer), without reading it.
std::string resolve_tokenizer(std::string_view spec, const DataPaths& paths, TokenizerSource* out);

// Opens a tokenizer by what `spec` names:
//   *.model                    a SentencePiece model
//   *.bin                      a llama2.c tokenizer file (e.g. tok512.bin)
//   *.gguf                     the tokenizer.ggml.* vocabulary of a GGUF model (gguf_tokenizer.h)
//   a folder or encoder.json   GPT-2 (encoder.json and vocab.bpe side by side)
//   "gpt2"                     GPT-2 from paths.data_dir/gpt2
//   "bytes"                    one token per byte (byte_tokenizer.h)
std::string load_tokenizer(std::string_view spec, const DataPaths& paths,
                           std::unique_ptr<Tokenizer>* out);

}  // namespace mx::data
