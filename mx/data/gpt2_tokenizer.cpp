#include "mx/data/gpt2_tokenizer.h"

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mx/data/gpt2_pretokenize.h"
#include "mx/data/unicode.h"
#include "mx/io/read_file.h"

namespace mx::data {
namespace {

uint64_t pair_key(uint32_t left, uint32_t right) {
  return (uint64_t{left} << 32) | right;
}

class Gpt2Tokenizer final : public Tokenizer {
 public:
  explicit Gpt2Tokenizer(Gpt2Vocab vocab) : vocab_(std::move(vocab)) {}

  std::string_view kind() const override { return "gpt2"; }
  uint32_t vocab_size() const override { return uint32_t(vocab_.token_bytes.size()); }
  std::optional<uint32_t> bos_id() const override { return vocab_.end_of_text; }
  std::optional<uint32_t> eos_id() const override { return vocab_.end_of_text; }

  std::vector<uint32_t> encode(std::string_view text) const override {
    std::vector<uint32_t> ids;
    for (std::string_view piece : gpt2_pretokenize(text)) {
      const std::vector<uint32_t> piece_ids = cached_bpe(piece);
      ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
    }
    return ids;
  }

  std::string decode(std::span<const uint32_t> ids) const override {
    std::string text;
    for (uint32_t id : ids) {
      if (id < vocab_.token_bytes.size()) text += vocab_.token_bytes[id];
    }
    return text;
  }

 private:
  // Natural text repeats a few thousand pieces most of the time; the bound keeps memory flat on
  // text that does not.
  static constexpr size_t kCacheLimit = 1 << 16;

  std::vector<uint32_t> cached_bpe(std::string_view piece) const {
    const std::string key(piece);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    }
    std::vector<uint32_t> ids = gpt2_bpe(vocab_, piece);
    std::lock_guard<std::mutex> lock(mutex_);
    if (cache_.size() >= kCacheLimit) cache_.clear();
    cache_.emplace(key, ids);
    return ids;
  }

  Gpt2Vocab vocab_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> cache_;
};

}  // namespace

std::array<char32_t, 256> gpt2_byte_to_unicode() {
  std::array<char32_t, 256> map{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    map[b] = printable ? char32_t(b) : next++;
  }
  return map;
}

std::string gpt2_token_text(std::string_view bytes) {
  static const std::array<char32_t, 256> byte_to_unicode = gpt2_byte_to_unicode();
  std::string text;
  for (char c : bytes) append_utf8(byte_to_unicode[uint8_t(c)], &text);
  return text;
}

std::string load_gpt2_vocab(const std::filesystem::path& encoder_json,
                            const std::filesystem::path& vocab_bpe, Gpt2Vocab* out) {
  std::string json_text, merges_text;
  if (std::string e = io::read_whole_file(encoder_json, &json_text); !e.empty()) return e;
  if (std::string e = io::read_whole_file(vocab_bpe, &merges_text); !e.empty()) return e;

  const nlohmann::json encoder = nlohmann::json::parse(json_text, nullptr, false);
  if (encoder.is_discarded() || !encoder.is_object()) {
    return encoder_json.string() + ": not a JSON object of token -> id";
  }
  std::vector<std::string> tokens(encoder.size());
  std::vector<bool> seen(encoder.size());
  for (const auto& [token, value] : encoder.items()) {
    if (!value.is_number_unsigned() || value.get<uint64_t>() >= encoder.size()) {
      return encoder_json.string() + ": token " + token + " has id " + value.dump() +
             ", not in 0.." + std::to_string(encoder.size() - 1);
    }
    const uint32_t id = value.get<uint32_t>();
    if (seen[id]) return encoder_json.string() + ": id " + std::to_string(id) + " used twice";
    seen[id] = true;
    tokens[id] = token;
  }
  std::vector<std::string> merges;
  std::istringstream lines(merges_text);
  std::string line;
  for (int line_no = 1; std::getline(lines, line); ++line_no) {
    if (line.empty() || line.starts_with("#version")) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
      return vocab_bpe.string() + ":" + std::to_string(line_no) + ": expected \"left right\"";
    }
    merges.push_back(std::move(line));
  }
  return gpt2_vocab_from_lists(tokens, merges, encoder_json.string(), out);
}

std::string gpt2_vocab_from_lists(std::span<const std::string> tokens,
                                  std::span<const std::string> merges, std::string_view source,
                                  Gpt2Vocab* out) {
  const std::string where(source);
  // Token strings are in the byte_to_unicode alphabet; map them back to raw bytes.
  std::unordered_map<char32_t, uint8_t> to_byte;
  const auto byte_to_unicode = gpt2_byte_to_unicode();
  for (int b = 0; b < 256; ++b) to_byte[byte_to_unicode[b]] = uint8_t(b);

  Gpt2Vocab v;
  std::unordered_map<std::string_view, uint32_t> id_of;  // token string as spelled -> id
  v.token_bytes.resize(tokens.size());
  for (uint32_t id = 0; id < tokens.size(); ++id) {
    const std::string& token = tokens[id];
    id_of.emplace(token, id);
    std::string& bytes = v.token_bytes[id];
    for (size_t pos = 0; pos < token.size();) {
      const Utf8Step s = decode_utf8(token, pos);
      auto it = to_byte.find(s.codepoint);
      // Every token, <|endoftext|> included, is spelled in the byte alphabet.
      if (!s.valid || it == to_byte.end()) {
        return where + ": token " + std::to_string(id) + " has a character outside GPT-2's " +
               "byte alphabet at byte " + std::to_string(pos);
      }
      bytes.push_back(char(it->second));
      pos += s.length;
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    append_utf8(byte_to_unicode[b], &ch);
    auto it = id_of.find(ch);
    if (it == id_of.end()) return where + ": no token for byte " + std::to_string(b);
    v.byte_token[b] = it->second;
  }
  if (auto it = id_of.find("<|endoftext|>"); it != id_of.end()) v.end_of_text = it->second;

  std::string joined;
  for (uint32_t rank = 0; rank < merges.size(); ++rank) {
    const std::string_view merge = merges[rank];
    const size_t space = merge.find(' ');
    if (space == std::string_view::npos || merge.find(' ', space + 1) != std::string_view::npos) {
      return where + ": merge " + std::to_string(rank) + " is not \"left right\"";
    }
    const std::string_view left = merge.substr(0, space), right = merge.substr(space + 1);
    joined.assign(left);
    joined += right;
    auto l = id_of.find(left), r = id_of.find(right), m = id_of.find(joined);
    if (l == id_of.end() || r == id_of.end() || m == id_of.end()) {
      return where + ": merge " + std::to_string(rank) + " \"" + std::string(merge) +
             "\" uses or makes a token missing from the vocabulary";
    }
    // A pair listed twice keeps its first (lowest) rank, as a rank lookup table would.
    v.merges.emplace(pair_key(l->second, r->second), Gpt2Vocab::Merge{rank, m->second});
  }
  *out = std::move(v);
  return "";
}

std::vector<uint32_t> gpt2_bpe(const Gpt2Vocab& vocab, std::string_view piece) {
  std::vector<uint32_t> word;
  word.reserve(piece.size());
  for (char c : piece) word.push_back(vocab.byte_token[uint8_t(c)]);
  std::vector<uint32_t> merged;
  while (word.size() > 1) {
    const Gpt2Vocab::Merge* best = nullptr;
    uint64_t best_key = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = vocab.merges.find(pair_key(word[i], word[i + 1]));
      if (it != vocab.merges.end() && (!best || it->second.rank < best->rank)) {
        best = &it->second;
        best_key = it->first;
      }
    }
    if (!best) break;
    // Every occurrence of the best pair, left to right without overlap ("aaa" -> "aa" "a").
    merged.clear();
    for (size_t i = 0; i < word.size(); ++i) {
      if (i + 1 < word.size() && pair_key(word[i], word[i + 1]) == best_key) {
        merged.push_back(best->result);
        ++i;
      } else {
        merged.push_back(word[i]);
      }
    }
    word.swap(merged);
  }
  return word;
}

std::string load_gpt2_tokenizer(const std::filesystem::path& encoder_json,
                                const std::filesystem::path& vocab_bpe,
                                std::unique_ptr<Tokenizer>* out) {
  Gpt2Vocab vocab;
  if (std::string e = load_gpt2_vocab(encoder_json, vocab_bpe, &vocab); !e.empty()) return e;
  *out = make_gpt2_tokenizer(std::move(vocab));
  return "";
}

std::unique_ptr<Tokenizer> make_gpt2_tokenizer(Gpt2Vocab vocab) {
  return std::make_unique<Gpt2Tokenizer>(std::move(vocab));
}

}  // namespace mx::data
