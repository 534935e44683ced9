#include "mx/data/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <cstdio>

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "mx/io/read_file.h"

namespace mx::data {
namespace {

// Hands SentencePiece the corpus line by line without copying it into a file first.
class LineIterator final : public sentencepiece::SentenceIterator {
 public:
  LineIterator(std::string_view text, const SentencePieceTrainOptions& o) : text_(text), o_(o) {
    Next();
  }
  bool done() const override { return done_; }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return {}; }
  void Next() override {
    while (pos_ < text_.size() && count_ < o_.max_sentences) {
      size_t end = text_.find('\n', pos_);
      if (end == std::string_view::npos) end = text_.size();
      std::string_view line = text_.substr(pos_, end - pos_);
      pos_ = end + 1;
      if (line.ends_with('\r')) line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      if (int64_t(line.size()) > o_.max_sentence_bytes)
        line = line.substr(0, o_.max_sentence_bytes);
      line_.assign(line);
      ++count_;
      return;
    }
    done_ = true;
  }

 private:
  std::string_view text_;
  SentencePieceTrainOptions o_;
  size_t pos_ = 0;
  int64_t count_ = 0;
  std::string line_;
  bool done_ = false;
};

// Why SentencePiece could not load `bytes`, in words: its own messages name its source files
// ("./src/sentencepiece_processor.cc(232) [model_proto->ParseFromArray(...)]").
std::string load_failure(std::string_view bytes, const sentencepiece::util::Status& status) {
  if (bytes.empty()) return "an empty file, not a SentencePiece model";
  const std::string said = status.message();
  if (said.find("ParseFromArray") != std::string::npos) {
    return "not a SentencePiece model (its bytes are not a model's protobuf)";
  }
  return "not a usable SentencePiece model: " + said;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  std::string load(const std::string& model_bytes) {
    const auto status = processor_.LoadFromSerializedProto(model_bytes);
    return status.ok() ? "" : load_failure(model_bytes, status);
  }
  std::string_view kind() const override { return "sentencepiece"; }
  uint32_t vocab_size() const override { return uint32_t(processor_.GetPieceSize()); }
  std::optional<uint32_t> bos_id() const override { return id_or_none(processor_.bos_id()); }
  std::optional<uint32_t> eos_id() const override { return id_or_none(processor_.eos_id()); }

  std::vector<uint32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    // Fails only when no model is loaded, which load_* rules out.
    (void)processor_.Encode(text, &ids);
    return {ids.begin(), ids.end()};
  }

  std::string decode(std::span<const uint32_t> ids) const override {
    std::vector<int> in;
    in.reserve(ids.size());
    for (uint32_t id : ids) {
      if (id < vocab_size()) in.push_back(int(id));
    }
    std::string text;
    (void)processor_.Decode(in, &text);
    return text;
  }

 private:
  static std::optional<uint32_t> id_or_none(int id) {
    return id >= 0 ? std::optional<uint32_t>(uint32_t(id)) : std::nullopt;
  }
  sentencepiece::SentencePieceProcessor processor_;
};

// SentencePiece's own message about too small a vocabulary points at a flag of its own that mx
// does not have; this says what to change instead.
std::string training_error(std::string_view message) {
  constexpr std::string_view kTooSmall = "Vocabulary size is smaller than required_chars. ";
  const size_t at = message.find(kTooSmall);
  if (at != std::string_view::npos) {
    unsigned asked = 0, needed = 0;
    const std::string rest(message.substr(at + kTooSmall.size()));
    if (std::sscanf(rest.c_str(), "%u vs %u", &asked, &needed) == 2) {
      return "vocab size " + std::to_string(asked) + " is too small for this corpus: its " +
             "characters and the special pieces need at least " + std::to_string(needed);
    }
  }
  return "SentencePiece training: " + std::string(message);
}

}  // namespace

std::string train_sentencepiece(std::string_view text, const SentencePieceTrainOptions& o,
                                std::string* model_bytes) {
  if (o.vocab_size < 260) {
    return "vocab size " + std::to_string(o.vocab_size) +
           " is too small: 3 special and 256 byte pieces come first";
  }
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(o.vocab_size)},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"character_coverage", "0.9995"},
      // Small corpora may not hold vocab_size distinct merges: stop short instead of failing.
      {"hard_vocab_limit", "false"},
      // We cap sentences ourselves, in order; SentencePiece's own cap would sample randomly.
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(o.max_sentence_bytes)},
      {"num_threads", std::to_string(o.threads)},
      // The library must not print: silence SentencePiece's training log.
      {"minloglevel", "2"},
  };
  LineIterator lines(text, o);
  if (lines.done()) return "no training text: the corpus has no non-empty line";
  std::string bytes;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &bytes);
  if (!status.ok()) return training_error(status.message());
  *model_bytes = std::move(bytes);
  return "";
}

std::string load_sentencepiece_tokenizer_from_bytes(const std::string& model_bytes,
                                                    std::unique_ptr<Tokenizer>* out) {
  auto t = std::make_unique<SentencePieceTokenizer>();
  if (std::string e = t->load(model_bytes); !e.empty()) return e;
  *out = std::move(t);
  return "";
}

std::string load_sentencepiece_tokenizer(const std::filesystem::path& path,
                                         std::unique_ptr<Tokenizer>* out) {
  std::string bytes;
  if (std::string e = io::read_whole_file(path, &bytes); !e.empty()) return e;
  std::string e = load_sentencepiece_tokenizer_from_bytes(bytes, out);
  return e.empty() ? "" : path.string() + ": " + e;
}

std::string read_sentencepiece_pieces(const std::filesystem::path& path,
                                      std::vector<SentencePieceEntry>* out) {
  std::string bytes;
  if (std::string e = io::read_whole_file(path, &bytes); !e.empty()) return e;
  sentencepiece::SentencePieceProcessor processor;
  if (const auto status = processor.LoadFromSerializedProto(bytes); !status.ok()) {
    return path.string() + ": " + load_failure(bytes, status);
  }
  using Kind = SentencePieceEntry::Kind;
  out->clear();
  for (int id = 0; id < processor.GetPieceSize(); ++id) {
    const Kind kind = processor.IsUnknown(id)   ? Kind::kUnknown
                      : processor.IsControl(id) ? Kind::kControl
                      : processor.IsByte(id)    ? Kind::kByte
                      : processor.IsUnused(id)  ? Kind::kUnused
                                                : Kind::kNormal;
    out->push_back({processor.IdToPiece(id), processor.GetScore(id), kind});
  }
  return "";
}

}  // namespace mx::data
