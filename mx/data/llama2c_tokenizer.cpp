#include "mx/data/llama2c_tokenizer.h"

#include <bit>
#include <cstdint>
#include <cstring>
#include <queue>

#include "mx/io/read_file.h"

namespace mx::data {
namespace {

static_assert(std::endian::native == std::endian::little, "tokenizer.bin is little-endian");

// "<0xAB>" -> 0xAB; -1 for any other piece.
int byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
  int v = 0;
  for (char c : piece.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') {
      v += c - '0';
    } else if (c >= 'A' && c <= 'F') {
      v += c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      v += c - 'a' + 10;
    } else {
      return -1;
    }
  }
  return v;
}

bool is_continuation(uint8_t b) {
  return (b & 0xC0) == 0x80;
}

// The token sequence before any merge: run.c's per-character lookup with byte fallback.
std::vector<uint32_t> initial_tokens(const Llama2cVocab& vocab, std::string_view text) {
  std::vector<uint32_t> tokens;
  const auto push_bytes = [&](std::string_view bytes) {
    for (char c : bytes) tokens.push_back(vocab.byte_fallback ? uint8_t(c) + 3u : kLlama2cUnk);
  };
  if (!text.empty()) {
    auto space = vocab.id_of.find(" ");
    space != vocab.id_of.end() ? tokens.push_back(space->second) : push_bytes(" ");
  }
  size_t start = 0, length = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!is_continuation(uint8_t(text[i]))) length = 0;
    if (length == 0) start = i;
    ++length;
    // A character runs on while continuation bytes follow, up to 4 bytes.
    if (i + 1 < text.size() && is_continuation(uint8_t(text[i + 1])) && length < 4) continue;
    const std::string_view ch = text.substr(start, length);
    auto it = vocab.id_of.find(std::string(ch));
    it != vocab.id_of.end() ? tokens.push_back(it->second) : push_bytes(ch);
    length = 0;
  }
  return tokens;
}

class Llama2cTokenizer final : public Tokenizer {
 public:
  explicit Llama2cTokenizer(Llama2cVocab vocab) : vocab_(std::move(vocab)) {}
  std::string_view kind() const override { return "llama2c"; }
  uint32_t vocab_size() const override { return uint32_t(vocab_.pieces.size()); }
  std::optional<uint32_t> bos_id() const override { return kLlama2cBos; }
  std::optional<uint32_t> eos_id() const override { return kLlama2cEos; }
  std::vector<uint32_t> encode(std::string_view text) const override {
    return llama2c_encode(vocab_, text);
  }
  std::string decode(std::span<const uint32_t> ids) const override {
    return llama2c_decode(vocab_, ids);
  }

 private:
  Llama2cVocab vocab_;
};

}  // namespace

std::string load_llama2c_vocab(const std::filesystem::path& path, Llama2cVocab* out) {
  std::string bytes;
  if (std::string e = io::read_whole_file(path, &bytes); !e.empty()) return e;
  const std::string name = path.string();
  const auto read_i32 = [&](size_t offset, int32_t* v) {
    if (offset + 4 > bytes.size()) return false;
    std::memcpy(v, bytes.data() + offset, 4);
    return true;
  };

  Llama2cVocab v;
  if (!read_i32(0, &v.max_token_length)) {
    return name + ": truncated at offset 0: no max_token_length";
  }
  size_t offset = 4;
  while (offset < bytes.size()) {
    int32_t length;
    if (offset + 8 > bytes.size() || !read_i32(offset + 4, &length)) {
      return name + ": truncated at offset " + std::to_string(offset) + ": token " +
             std::to_string(v.pieces.size()) + " lacks its score and length";
    }
    if (length < 0 || offset + 8 + size_t(length) > bytes.size()) {
      return name + ": token " + std::to_string(v.pieces.size()) + " at offset " +
             std::to_string(offset) + " has length " + std::to_string(length) +
             " beyond the end of the file";
    }
    float score;
    std::memcpy(&score, bytes.data() + offset, 4);
    v.scores.push_back(score);
    v.pieces.emplace_back(bytes.data() + offset + 8, size_t(length));
    offset += 8 + size_t(length);
  }
  if (std::string e = llama2c_vocab_from_pieces(std::move(v.pieces), std::move(v.scores),
                                                v.max_token_length, &v);
      !e.empty()) {
    return name + ": " + e;
  }
  *out = std::move(v);
  return "";
}

std::string llama2c_vocab_from_pieces(std::vector<std::string> pieces, std::vector<float> scores,
                                      int32_t max_token_length, Llama2cVocab* out) {
  if (pieces.size() != scores.size()) {
    return "there are " + std::to_string(pieces.size()) + " pieces but " +
           std::to_string(scores.size()) + " scores";
  }
  if (pieces.size() < 3) return "fewer than 3 tokens (<unk>, <s>, </s>)";
  Llama2cVocab v;
  v.max_token_length = max_token_length;
  v.pieces = std::move(pieces);
  v.scores = std::move(scores);
  for (size_t id = 0; id < v.pieces.size(); ++id) v.id_of.emplace(v.pieces[id], uint32_t(id));
  v.byte_fallback = v.pieces.size() >= 259;
  for (int b = 0; b < 256 && v.byte_fallback; ++b) {
    v.byte_fallback = byte_piece_value(v.pieces[3 + b]) == b;
  }
  *out = std::move(v);
  return "";
}

std::vector<uint32_t> llama2c_encode(const Llama2cVocab& vocab, std::string_view text) {
  std::vector<uint32_t> tokens = initial_tokens(vocab, text);
  const size_t n = tokens.size();
  if (n < 2) return tokens;
  // Symbols form a linked list over their original positions; a merge keeps the left one.
  constexpr size_t kNone = SIZE_MAX;
  std::vector<size_t> next(n), prev(n);  // next == n: last; prev == kNone: first
  std::vector<uint32_t> version(n, 0);
  for (size_t i = 0; i < n; ++i) next[i] = i + 1, prev[i] = i == 0 ? kNone : i - 1;

  struct Candidate {
    float score;
    size_t left, right;
    uint32_t left_version, right_version;
    uint32_t merged;
  };
  // Highest score first, then leftmost: run.c's strict `>` over a left-to-right scan.
  const auto after = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(after)> heap(after);
  std::string joined;
  const auto consider = [&](size_t left, size_t right) {
    joined = vocab.pieces[tokens[left]];
    joined += vocab.pieces[tokens[right]];
    auto it = vocab.id_of.find(joined);
    if (it == vocab.id_of.end() || !(vocab.scores[it->second] > -1e10f)) return;
    heap.push({vocab.scores[it->second], left, right, version[left], version[right], it->second});
  };
  for (size_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // Stale: either side has been merged since (merging bumps the left side's version and
    // retires the right side by bumping its version too).
    if (version[c.left] != c.left_version || version[c.right] != c.right_version) continue;
    tokens[c.left] = c.merged;
    ++version[c.left];
    ++version[c.right];
    next[c.left] = next[c.right];
    if (next[c.left] < n) prev[next[c.left]] = c.left;
    if (prev[c.left] != kNone) consider(prev[c.left], c.left);
    if (next[c.left] < n) consider(c.left, next[c.left]);
  }
  std::vector<uint32_t> out;
  for (size_t i = 0; i < n; i = next[i]) out.push_back(tokens[i]);
  return out;
}

std::string llama2c_decode_piece(const Llama2cVocab& vocab, uint32_t previous, uint32_t id) {
  if (id >= vocab.pieces.size() || id == kLlama2cBos || id == kLlama2cEos) return "";
  std::string_view piece = vocab.pieces[id];
  if (previous == kLlama2cBos && piece.starts_with(' ')) piece.remove_prefix(1);
  if (const int b = byte_piece_value(piece); b >= 0) return std::string(1, char(b));
  return std::string(piece);
}

std::string llama2c_decode(const Llama2cVocab& vocab, std::span<const uint32_t> ids) {
  std::string text;
  uint32_t previous = kLlama2cBos;
  for (uint32_t id : ids) {
    text += llama2c_decode_piece(vocab, previous, id);
    previous = id;
  }
  return text;
}

std::string load_llama2c_tokenizer(const std::filesystem::path& path,
                                   std::unique_ptr<Tokenizer>* out) {
  Llama2cVocab vocab;
  if (std::string e = load_llama2c_vocab(path, &vocab); !e.empty()) return e;
  *out = make_llama2c_tokenizer(std::move(vocab));
  return "";
}

std::unique_ptr<Tokenizer> make_llama2c_tokenizer(Llama2cVocab vocab) {
  return std::make_unique<Llama2cTokenizer>(std::move(vocab));
}

}  // namespace mx::data
