#include "mx/data/gguf_tokenizer.h"

#include <algorithm>
#include <map>
#include <optional>

#include "mx/data/gpt2_tokenizer.h"
#include "mx/data/llama2c_tokenizer.h"
#include "mx/data/sentencepiece_tokenizer.h"
#include "mx/io/cat.h"
#include "mx/io/gguf_values.h"

namespace mx::data {
namespace {

using io::cat;
using io::gguf_kv;

constexpr std::string_view kSentencePieceSpace = "\xE2\x96\x81";  // U+2581
constexpr std::string_view kPrefix = "tokenizer.ggml.";

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  for (size_t pos = 0;;) {
    const size_t at = text.find(from, pos);
    out.append(text.substr(pos, at - pos));
    if (at == std::string_view::npos) return out;
    out.append(to);
    pos = at + from.size();
  }
}

// A vocabulary as llama.cpp lists it, before it becomes KVs.
struct VocabLists {
  std::string model;  // "llama" or "gpt2"
  std::vector<std::string> tokens;
  std::vector<float> scores;  // llama only
  std::vector<int32_t> types;
  std::vector<std::string> merges;  // gpt2 only
  std::optional<uint32_t> bos, eos, unk;

  void add(std::string token, float score, GgufTokenType type) {
    tokens.push_back(std::move(token));
    scores.push_back(score);
    types.push_back(int32_t(type));
  }
};

// llama2.c's tokenizer.bin: SentencePiece's pieces with ' ' for U+2581 and "\n<s>\n" for BOS.
std::string llama2c_lists(const std::filesystem::path& path, VocabLists* out) {
  Llama2cVocab v;
  if (std::string e = load_llama2c_vocab(path, &v); !e.empty()) return e;
  out->model = "llama";
  for (uint32_t id = 0; id < v.pieces.size(); ++id) {
    const bool byte = v.byte_fallback && id >= 3 && id < 259;
    const GgufTokenType type = id == kLlama2cUnk                        ? GgufTokenType::kUnknown
                               : id == kLlama2cBos || id == kLlama2cEos ? GgufTokenType::kControl
                               : byte                                   ? GgufTokenType::kByte
                                                                        : GgufTokenType::kNormal;
    std::string token = id == kLlama2cUnk   ? "<unk>"
                        : id == kLlama2cBos ? "<s>"
                        : id == kLlama2cEos ? "</s>"
                        : byte              ? v.pieces[id]
                                            : replace_all(v.pieces[id], " ", kSentencePieceSpace);
    out->add(std::move(token), v.scores[id], type);
  }
  out->unk = kLlama2cUnk, out->bos = kLlama2cBos, out->eos = kLlama2cEos;
  return "";
}

std::string sentencepiece_lists(const std::filesystem::path& path, VocabLists* out) {
  std::vector<SentencePieceEntry> pieces;
  if (std::string e = read_sentencepiece_pieces(path, &pieces); !e.empty()) return e;
  using Kind = SentencePieceEntry::Kind;
  static const std::map<Kind, GgufTokenType> kTypes = {{Kind::kNormal, GgufTokenType::kNormal},
                                                       {Kind::kUnknown, GgufTokenType::kUnknown},
                                                       {Kind::kControl, GgufTokenType::kControl},
                                                       {Kind::kUnused, GgufTokenType::kUnused},
                                                       {Kind::kByte, GgufTokenType::kByte}};
  out->model = "llama";
  for (uint32_t id = 0; id < pieces.size(); ++id) {
    const SentencePieceEntry& p = pieces[id];
    if (p.kind == Kind::kUnknown && !out->unk) out->unk = id;
    if (p.kind == Kind::kControl && p.piece == "<s>") out->bos = id;
    if (p.kind == Kind::kControl && p.piece == "</s>") out->eos = id;
    out->add(p.piece, p.score, kTypes.at(p.kind));
  }
  return "";
}

std::string gpt2_lists(const std::filesystem::path& encoder_json, VocabLists* out) {
  Gpt2Vocab v;
  if (std::string e = load_gpt2_vocab(encoder_json, encoder_json.parent_path() / "vocab.bpe", &v);
      !e.empty()) {
    return e;
  }
  out->model = "gpt2";
  for (uint32_t id = 0; id < v.token_bytes.size(); ++id) {
    const bool special = id == v.end_of_text;
    out->add(gpt2_token_text(v.token_bytes[id]), 0.0f,
             special ? GgufTokenType::kControl : GgufTokenType::kNormal);
  }
  std::vector<std::pair<uint32_t, uint64_t>> by_rank;  // rank, pair key
  for (const auto& [key, merge] : v.merges) by_rank.emplace_back(merge.rank, key);
  std::sort(by_rank.begin(), by_rank.end());
  for (const auto& [rank, key] : by_rank) {
    out->merges.push_back(cat(out->tokens[key >> 32], " ", out->tokens[key & 0xFFFFFFFFu]));
  }
  out->bos = out->eos = v.end_of_text;
  return "";
}

std::vector<io::GgufKv> to_kvs(const VocabLists& v) {
  std::vector<io::GgufKv> kvs;
  const auto key = [](std::string_view name) { return cat(kPrefix, name); };
  kvs.push_back(gguf_kv(key("model"), v.model));
  if (v.model == "gpt2") kvs.push_back(gguf_kv(key("pre"), std::string("gpt-2")));
  kvs.push_back({key("tokens"), io::gguf_string_array(v.tokens)});
  if (v.model == "llama") kvs.push_back({key("scores"), io::gguf_f32_array(v.scores)});
  kvs.push_back({key("token_type"), io::gguf_i32_array(v.types)});
  if (v.model == "gpt2") kvs.push_back({key("merges"), io::gguf_string_array(v.merges)});
  if (v.bos) kvs.push_back(gguf_kv(key("bos_token_id"), *v.bos));
  if (v.eos) kvs.push_back(gguf_kv(key("eos_token_id"), *v.eos));
  if (v.unk) kvs.push_back(gguf_kv(key("unknown_token_id"), *v.unk));
  // mx generate starts from BOS and adds no EOS: front ends that follow these keys do the same.
  kvs.push_back(gguf_kv(key("add_bos_token"), v.bos.has_value()));
  kvs.push_back(gguf_kv(key("add_eos_token"), false));
  return kvs;
}

// llama.cpp reads scores and token_type by token id, so lists shorter than the tokens would
// be read past their end and longer ones mean the file was put together wrongly.
std::string check_per_token_lists(const io::GgufFile& file, size_t tokens) {
  std::vector<float> scores;
  if (std::string e = io::read_gguf_floats(file, cat(kPrefix, "scores"), false, &scores);
      !e.empty()) {
    return e;
  }
  std::vector<int64_t> types;
  if (std::string e = io::read_gguf_integers(file, cat(kPrefix, "token_type"), false, &types);
      !e.empty()) {
    return e;
  }
  for (auto [name, count] : {std::pair{"scores", scores.size()}, {"token_type", types.size()}}) {
    if (file.find_kv(cat(kPrefix, name)) != nullptr && count != tokens) {
      return cat(kPrefix, name, " has ", count, " entries for ", tokens, " tokens");
    }
  }
  return "";
}

// A GGUF model's own tokenizer KVs, as they are.
std::string copy_gguf_kvs(const std::filesystem::path& path, int64_t model_vocab,
                          std::vector<io::GgufKv>* out) {
  io::GgufFile file;
  if (std::string e = io::open_gguf(path.string(), &file); !e.empty()) return e;
  std::vector<std::string> tokens;
  if (std::string e = io::read_gguf_strings(file, cat(kPrefix, "tokens"), true, &tokens);
      !e.empty()) {
    return cat(path.string(), ": ", e);
  }
  if (int64_t(tokens.size()) != model_vocab) {
    return cat(path.string(), ": its tokenizer has ", tokens.size(), " pieces, the model ",
               model_vocab);
  }
  if (std::string e = check_per_token_lists(file, tokens.size()); !e.empty()) {
    return cat(path.string(), ": ", e);
  }
  out->clear();
  for (const io::GgufKv& kv : file.kvs()) {
    if (kv.key.starts_with(kPrefix)) out->push_back(kv);
  }
  return "";
}

}  // namespace

std::string gguf_tokenizer_kvs(std::string_view spec, const DataPaths& paths, int64_t model_vocab,
                               std::vector<io::GgufKv>* out) {
  TokenizerSource source;
  if (std::string e = resolve_tokenizer(spec, paths, &source); !e.empty()) return e;
  VocabLists v;
  std::string e;
  switch (source.kind) {
    case TokenizerSource::Kind::kBytes:
      return "the model reads raw bytes (tokenizer 'bytes'), and llama.cpp has no byte tokenizer";
    case TokenizerSource::Kind::kGguf:
      return copy_gguf_kvs(source.path, model_vocab, out);
    case TokenizerSource::Kind::kLlama2c:
      e = llama2c_lists(source.path, &v);
      break;
    case TokenizerSource::Kind::kSentencePiece:
      e = sentencepiece_lists(source.path, &v);
      break;
    case TokenizerSource::Kind::kGpt2:
      e = gpt2_lists(source.path, &v);
      break;
  }
  if (!e.empty()) return e;
  if (int64_t(v.tokens.size()) > model_vocab) {
    return cat("tokenizer ", spec, " has ", v.tokens.size(), " pieces, more than the model's ",
               model_vocab);
  }
  // Scores far below any merge's keep the padding out of SentencePiece merges.
  for (int64_t id = int64_t(v.tokens.size()); id < model_vocab; ++id) {
    v.add(cat("[PAD", id, "]"), -1e10f, GgufTokenType::kUnused);
  }
  *out = to_kvs(v);
  return "";
}

std::string tokenizer_from_gguf(const io::GgufFile& file, std::unique_ptr<Tokenizer>* out) {
  const auto key = [](std::string_view name) { return cat(kPrefix, name); };
  std::string model;
  if (std::string e = io::read_gguf_string(file, key("model"), true, &model); !e.empty()) {
    return cat("no tokenizer: ", e);
  }
  std::vector<std::string> tokens;
  if (std::string e = io::read_gguf_strings(file, key("tokens"), true, &tokens); !e.empty()) {
    return e;
  }
  if (std::string e = check_per_token_lists(file, tokens.size()); !e.empty()) return e;
  if (model == "llama") {
    std::vector<float> scores;
    if (std::string e = io::read_gguf_floats(file, key("scores"), true, &scores); !e.empty()) {
      return e;
    }
    for (auto [name, want] : {std::pair{"unknown_token_id", kLlama2cUnk},
                              {"bos_token_id", kLlama2cBos},
                              {"eos_token_id", kLlama2cEos}}) {
      int64_t id = want;
      if (std::string e = io::read_gguf_integer(file, key(name), false, &id); !e.empty()) return e;
      if (id != int64_t(want)) {
        return cat(key(name), " is ", id, "; mxkit reads SentencePiece vocabularies with <unk> 0, ",
                   "<s> 1 and </s> 2");
      }
    }
    bool space_prefix = true;
    if (std::string e = io::read_gguf_bool(file, key("add_space_prefix"), false, &space_prefix);
        !e.empty()) {
      return e;
    }
    if (!space_prefix) {
      return cat(key("add_space_prefix"), " is false; mxkit's SentencePiece reader always adds it");
    }
    int32_t longest = 0;
    for (std::string& t : tokens) {
      t = replace_all(t, kSentencePieceSpace, " ");
      longest = std::max(longest, int32_t(std::min<size_t>(t.size(), INT32_MAX)));
    }
    Llama2cVocab v;
    if (std::string e =
            llama2c_vocab_from_pieces(std::move(tokens), std::move(scores), longest, &v);
        !e.empty()) {
      return cat(key("tokens"), ": ", e);
    }
    *out = make_llama2c_tokenizer(std::move(v));
    return "";
  }
  if (model == "gpt2") {
    std::string pre = "gpt-2";
    if (std::string e = io::read_gguf_string(file, key("pre"), false, &pre); !e.empty()) return e;
    if (pre != "gpt-2" && pre != "default") {
      return cat(key("pre"), " is '", io::one_line(pre),
                 "'; mxkit implements GPT-2's pre-tokenizer only");
    }
    std::vector<std::string> merges;
    if (std::string e = io::read_gguf_strings(file, key("merges"), true, &merges); !e.empty()) {
      return e;
    }
    Gpt2Vocab v;
    if (std::string e = gpt2_vocab_from_lists(tokens, merges, "tokenizer.ggml", &v); !e.empty()) {
      return e;
    }
    *out = make_gpt2_tokenizer(std::move(v));
    return "";
  }
  return cat(key("model"), " is '", io::one_line(model),
             "'; mxkit reads 'llama' and 'gpt2' tokenizers");
}

std::string load_gguf_tokenizer(const std::filesystem::path& path,
                                std::unique_ptr<Tokenizer>* out) {
  io::GgufFile file;
  if (std::string e = io::open_gguf(path.string(), &file); !e.empty()) return e;
  if (std::string e = tokenizer_from_gguf(file, out); !e.empty()) {
    return cat(path.string(), ": ", e);
  }
  return "";
}

}  // namespace mx::data
