// `mx tokenizer`: train a SentencePiece model, encode and decode with any tokenizer, and turn a
// corpus into the train/validation token shards that training reads.
#include <fmt/format.h>

#include <cstdio>

#include "mx/data/corpus.h"
#include "mx/data/sentencepiece_tokenizer.h"
#include "mx/data/token_dataset.h"
#include "mx/data/tokenizer.h"
#include "mx/io/atomic_file.h"
#include "tools/mx/commands.h"

namespace mx::tools {
namespace {

struct TokenizerOptions {
  std::string corpus;
  std::string output;
  std::string tokenizer;
  std::string text;
  std::vector<uint32_t> ids;
  data::SentencePieceTrainOptions train;
  size_t max_bytes = 0;
};

// Prints the error and records exit status 2; true when there was one.
bool failed(const std::string& error) {
  if (error.empty()) return false;
  fmt::print(stderr, "mx: error: {}\n", error);
  set_exit_code(2);
  return true;
}

void run_train(const TokenizerOptions& o) {
  data::Corpus corpus;
  if (failed(data::resolve_corpus(o.corpus, data::data_paths_from_environment(), &corpus))) return;
  std::string text;
  if (failed(data::read_text(corpus.train_files, o.max_bytes, &text))) return;
  std::string model;
  if (failed(data::train_sentencepiece(text, o.train, &model))) return;
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (failed(data::load_sentencepiece_tokenizer_from_bytes(model, &tokenizer))) return;
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(model.data()),
                                       model.size());
  if (failed(io::write_file_atomically(o.output, bytes))) return;
  fmt::print("{}: SentencePiece BPE, {} tokens, trained on {} bytes of '{}' ({} files)\n", o.output,
             tokenizer->vocab_size(), text.size(), o.corpus, corpus.train_files.size());
}

bool load(const TokenizerOptions& o, std::unique_ptr<data::Tokenizer>* t) {
  return !failed(data::load_tokenizer(o.tokenizer, data::data_paths_from_environment(), t));
}

void run_encode(const TokenizerOptions& o) {
  std::unique_ptr<data::Tokenizer> t;
  if (!load(o, &t)) return;
  const std::vector<uint32_t> ids = t->encode(o.text);
  fmt::print("{}\n", fmt::join(ids, " "));
}

void run_decode(const TokenizerOptions& o) {
  std::unique_ptr<data::Tokenizer> t;
  if (!load(o, &t) || failed(data::check_ids(*t, o.ids))) return;
  fmt::print("{}\n", t->decode(o.ids));
}

void run_shards(const TokenizerOptions& o) {
  std::unique_ptr<data::Tokenizer> t;
  if (!load(o, &t)) return;
  data::Corpus corpus;
  if (failed(data::resolve_corpus(o.corpus, data::data_paths_from_environment(), &corpus))) return;
  data::TokenDatasetSummary s;
  if (failed(data::write_token_dataset(corpus, *t, o.output, &s))) return;
  fmt::print("{}: {} tokens\n{}: {} tokens ({})\nvocab size {} ({} tokenizer)\n",
             s.train_path.string(), s.train_tokens, s.validation_path.string(), s.validation_tokens,
             corpus.validation_files.empty() ? "the last 10% of the corpus"
                                             : "the corpus's validation files",
             s.vocab_size, t->kind());
}

}  // namespace

void register_tokenizer(CLI::App& app) {
  static TokenizerOptions o;
  CLI::App* cmd = app.add_subcommand("tokenizer", "Train, run and apply tokenizers");
  cmd->require_subcommand(1);
  const std::string corpus_help =
      "Corpus: sotu, tinyshakespeare, wikitext2, a text file, or a folder of .txt files";
  const std::string tokenizer_help =
      "Tokenizer: a SentencePiece .model, a llama2.c .bin, GPT-2's folder or encoder.json, "
      "or gpt2 (from MX_DATA_DIR)";

  CLI::App* train = cmd->add_subcommand("train", "Train a SentencePiece BPE model on a corpus");
  train->add_option("corpus", o.corpus, corpus_help)->required();
  train->add_option("--vocab", o.train.vocab_size, "Vocabulary size")
      ->check(CLI::Range(260, 1 << 20))
      ->required();
  train->add_option("-o,--output", o.output, "Model file to write")->required();
  train
      ->add_option("--max-sentences", o.train.max_sentences,
                   "Train on at most this many lines, in corpus order")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--max-bytes", o.max_bytes, "Read at most this many bytes (0: all)")
      ->capture_default_str();
  train->add_option("--threads", o.train.threads, "Training threads")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->callback([] { run_train(o); });

  CLI::App* encode = cmd->add_subcommand("encode", "Print the token ids of a text");
  encode->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  encode->add_option("text", o.text, "Text to encode")->required();
  encode->callback([] { run_encode(o); });

  CLI::App* decode = cmd->add_subcommand("decode", "Print the text of token ids");
  decode->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  decode->add_option("ids", o.ids, "Token ids")->required();
  decode->callback([] { run_decode(o); });

  CLI::App* shards = cmd->add_subcommand(
      "shards", "Tokenize a corpus into DIR/train.bin and DIR/val.bin for training");
  shards->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  shards->add_option("--data", o.corpus, corpus_help)->required();
  shards->add_option("-o,--output", o.output, "Output folder")->required();
  shards->callback([] { run_shards(o); });
}

}  // namespace mx::tools
