// GPT-2's byte-level BPE (Radford et al. 2019), from its original encoder.json and vocab.bpe.
//
// Text is split by gpt2_pretokenize; each piece's bytes become the 256 byte tokens, which are
// merged pairwise, always the adjacent pair whose merge comes first in vocab.bpe, every
// occurrence of it left to right, until no pair has a merge. "<|endoftext|>" in the text is
// ordinary text: the token is added by callers, never produced by encode.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mx/data/tokenizer.h"

namespace mx::data {

// GPT-2's reversible byte <-> printable character map: bytes that are printable Latin-1
// (! .. ~, ¡ .. ¬, ® .. ÿ) map to themselves, the other 68 to U+0100 onwards in byte order, so
// that vocabulary files hold no control or space characters.
std::array<char32_t, 256> gpt2_byte_to_unicode();

struct Gpt2Vocab {
  std::vector<std::string> token_bytes;  // id -> the raw bytes it stands for
  std::array<uint32_t, 256> byte_token;  // byte -> id of its one-byte token
  struct Merge {
    uint32_t rank;    // line of vocab.bpe, 0 first: lower merges first
    uint32_t result;  // id of the merged token
  };
  std::unordered_map<uint64_t, Merge> merges;  // key: left id << 32 | right id
  std::optional<uint32_t> end_of_text;         // "<|endoftext|>"
};

// How encoder.json and vocab.bpe spell a token: each byte through gpt2_byte_to_unicode.
std::string gpt2_token_text(std::string_view bytes);

// Reads encoder.json (token -> id) and vocab.bpe (merges, one "left right" per line).
std::string load_gpt2_vocab(const std::filesystem::path& encoder_json,
                            const std::filesystem::path& vocab_bpe, Gpt2Vocab* out);
// The same from the token spellings in id order and the merges ("left right") in rank order;
// errors begin with `source`.
std::string gpt2_vocab_from_lists(std::span<const std::string> tokens,
                                  std::span<const std::string> merges, std::string_view source,
                                  Gpt2Vocab* out);

// BPE of one pre-tokenized piece; no cache.
std::vector<uint32_t> gpt2_bpe(const Gpt2Vocab& vocab, std::string_view piece);

// The Tokenizer, with a cache of recent pieces (guarded by a mutex).
std::string load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                const std::filesystem::path& vocab_bpe,
                                std::unique_ptr<Tokenizer>* out);
std::unique_ptr<Tokenizer> make_gpt2_tokenizer(Gpt2Vocab vocab);

}  // namespace mx::data
