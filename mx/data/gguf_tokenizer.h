// Tokenizers in GGUF model files, as llama.cpp reads them (its llama-vocab.cpp): the KVs
//   tokenizer.ggml.model        "llama" (SentencePiece: pieces merged by score) or "gpt2"
//                               (byte-level BPE: pieces merged by rank)
//   tokenizer.ggml.tokens       the pieces in id order: SentencePiece spells a space U+2581 and
//                               a byte-fallback piece "<0xAB>"; GPT-2 spells each byte through
//                               gpt2_byte_to_unicode, as encoder.json does
//   tokenizer.ggml.scores       (llama) one f32 per piece; higher merges first
//   tokenizer.ggml.token_type   one i32 per piece (GgufTokenType)
//   tokenizer.ggml.merges       (gpt2) "left right" in rank order, as vocab.bpe lists them
//   tokenizer.ggml.pre          (gpt2) the pre-tokenizer: "gpt-2"
//   tokenizer.ggml.bos_token_id, eos_token_id, unknown_token_id, add_bos_token, add_eos_token
// llama.cpp needs as many pieces as the model has embedding rows, so a vocabulary smaller than
// the model's is padded with unused pieces "[PAD<id>]".
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mx/data/tokenizer.h"
#include "mx/io/gguf.h"

namespace mx::data {

// llama.cpp's llama_token_type.
enum class GgufTokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer.ggml.* KVs for the tokenizer `spec` names (load_tokenizer's specs), padded to
// `model_vocab` pieces. llama.cpp has no tokenizer of raw bytes: "bytes" is refused, as is a
// vocabulary larger than the model's.
std::string gguf_tokenizer_kvs(std::string_view spec, const DataPaths& paths, int64_t model_vocab,
                               std::vector<io::GgufKv>* out);

// The tokenizer a GGUF file's KVs describe. "llama" needs SentencePiece's layout of llama2.c
// and Llama 2 (<unk> 0, <s> 1, </s> 2, then the byte pieces) and a space prefix; "gpt2" needs
// GPT-2's pre-tokenizer. Anything else is refused, naming the key.
std::string tokenizer_from_gguf(const io::GgufFile& file, std::unique_ptr<Tokenizer>* out);
std::string load_gguf_tokenizer(const std::filesystem::path& path, std::unique_ptr<Tokenizer>* out);

}  // namespace mx::data
