// llama2.c's tokenizer.bin (Karpathy's llama2.c, run.c), e.g. stories260K's tok512.bin: the
// pieces and scores of a SentencePiece BPE model, re-encoded for a C reader.
//
// File: int32 max_token_length, then for each id in order until the end of the file: float32
// score, int32 byte length, the piece's bytes. SentencePiece's U+2581 is stored as ' ', BOS
// (id 1) as "\n<s>\n", EOS (id 2) as "\n</s>\n", and the 256 byte-fallback pieces (ids 3..258)
// as the text "<0x00>".."<0xFF>". All numbers are little-endian.
//
// Encoding follows run.c's encode(): a dummy-prefix " " token first (non-empty text only);
// then each UTF-8 character (at most 4 bytes) becomes its piece, or, when the vocabulary has
// none, one byte token per byte (id = byte + 3); then, repeatedly, the adjacent pair whose
// concatenated piece exists with the highest score is merged (the leftmost among equal
// scores, and none scoring <= -1e10), until no pair merges. Here the merging uses a heap
// instead of run.c's quadratic rescans; it chooses the same pair at every step.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mx/data/tokenizer.h"

namespace mx::data {

struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> pieces;  // as stored in the file
  std::vector<float> scores;
  std::unordered_map<std::string, uint32_t> id_of;  // piece -> lowest id holding it
  // Ids 3..258 are the pieces <0x00>..<0xFF>. Without them, characters missing from the
  // vocabulary encode as <unk> (id 0) rather than as run.c's meaningless byte + 3.
  bool byte_fallback = false;
};

inline constexpr uint32_t kLlama2cUnk = 0;
inline constexpr uint32_t kLlama2cBos = 1;
inline constexpr uint32_t kLlama2cEos = 2;

std::string load_llama2c_vocab(const std::filesystem::path& path, Llama2cVocab* out);
// The vocabulary of these pieces (spelled as the file stores them) and scores, in id order.
std::string llama2c_vocab_from_pieces(std::vector<std::string> pieces, std::vector<float> scores,
                                      int32_t max_token_length, Llama2cVocab* out);

// Without BOS/EOS; with the dummy prefix.
std::vector<uint32_t> llama2c_encode(const Llama2cVocab& vocab, std::string_view text);

// What run.c prints for `id` after `previous`: the piece, less its leading space right after
// BOS; <0xXX> pieces as the raw byte. BOS and EOS print nothing (they delimit documents).
std::string llama2c_decode_piece(const Llama2cVocab& vocab, uint32_t previous, uint32_t id);

// The pieces in order, the first as if it followed BOS: so decode(encode(text)) == text, the
// dummy prefix being the space stripped.
std::string llama2c_decode(const Llama2cVocab& vocab, std::span<const uint32_t> ids);

std::string load_llama2c_tokenizer(const std::filesystem::path& path,
                                   std::unique_ptr<Tokenizer>* out);
std::unique_ptr<Tokenizer> make_llama2c_tokenizer(Llama2cVocab vocab);

}  // namespace mx::data
