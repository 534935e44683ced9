// SentencePiece models (Kudo & Richardson 2018) through Debian's libsentencepiece: training
// from a corpus, loading a .model, encoding and decoding.
//
// Training makes a BPE model with llama's settings: byte fallback (any text round-trips, and
// unseen characters cost bytes rather than <unk>), identity normalization (no NFKC), digits
// split, whitespace kept as is. BPE rather than unigram because it is what the llama2.c
// tokenizers (tok512.bin) are, so models trained here read the same way, and because its
// training is a deterministic greedy count-and-merge: same sentences, same model bytes. Ids:
// <unk> 0, <s> 1, </s> 2, then the 256 byte pieces, then the merges.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mx/data/tokenizer.h"

namespace mx::data {

struct SentencePieceTrainOptions {
  uint32_t vocab_size = 4096;
  // Training reads at most this many sentences (non-empty lines), in corpus order: the cap
  // bounds time and memory on large corpora and keeps the choice deterministic.
  int64_t max_sentences = 200000;
  // Lines longer than this many bytes are cut, as SentencePiece skips longer ones.
  int64_t max_sentence_bytes = 4096;
  int threads = 1;
};

// Trains on the lines of `text` (a whole corpus, files joined by newlines) and returns the
// serialized model (the bytes of a .model file). Needs vocab_size > 259 + distinct characters
// kept; SentencePiece's error says so when it is too small.
std::string train_sentencepiece(std::string_view text, const SentencePieceTrainOptions& options,
                                std::string* model_bytes);

// From the bytes of a .model file, or from the file.
std::string load_sentencepiece_tokenizer_from_bytes(const std::string& model_bytes,
                                                    std::unique_ptr<Tokenizer>* out);
std::string load_sentencepiece_tokenizer(const std::filesystem::path& path,
                                         std::unique_ptr<Tokenizer>* out);

// One piece of a model as SentencePiece keeps it: U+2581 stands for a space. (Debian's
// libsentencepiece does not tell user-defined pieces apart: they read as normal.)
struct SentencePieceEntry {
  enum class Kind { kNormal, kUnknown, kControl, kUnused, kByte };
  std::string piece;
  float score = 0.0f;
  Kind kind = Kind::kNormal;
};

// The pieces of a .model file in id order.
std::string read_sentencepiece_pieces(const std::filesystem::path& path,
                                      std::vector<SentencePieceEntry>* out);

}  // namespace mx::data
