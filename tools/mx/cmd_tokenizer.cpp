// `mx tokenizer`: train a SentencePiece model, encode and decode with any tokenizer, and turn a
// corpus into the train/validation token shards that training reads.
#include <fmt/format.h>

#include <cstdio>
#include <limits>

#include "mx/data/corpus.h"
#include "mx/data/sentencepiece_tokenizer.h"
#include "mx/data/token_dataset.h"
#include "mx/data/tokenizer.h"
#include "mx/io/atomic_file.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/run_command.h"

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
  bool quiet = false;  // train and shards: no summary
};

std::string run_train(const TokenizerOptions& o) {
  if (std::string e = io::check_output_file(o.output); !e.empty()) return e;
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(o.corpus, data::data_paths_from_environment(), &corpus);
      !e.empty()) {
    return e;
  }
  std::string text;
  if (std::string e = data::read_text(corpus.train_files, o.max_bytes, &text); !e.empty()) return e;
  std::string model;
  if (std::string e = data::train_sentencepiece(text, o.train, &model); !e.empty()) return e;
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (std::string e = data::load_sentencepiece_tokenizer_from_bytes(model, &tokenizer);
      !e.empty()) {
    return e;
  }
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(model.data()),
                                       model.size());
  if (std::string e = io::write_file_atomically(o.output, bytes); !e.empty()) return e;
  if (o.quiet) return "";
  fmt::print("{}: SentencePiece BPE, {} tokens, trained on {} bytes of '{}' ({} files)\n", o.output,
             tokenizer->vocab_size(), text.size(), o.corpus, corpus.train_files.size());
  return "";
}

std::string load(const TokenizerOptions& o, std::unique_ptr<data::Tokenizer>* t) {
  return data::load_tokenizer(o.tokenizer, data::data_paths_from_environment(), t);
}

std::string run_encode(const TokenizerOptions& o) {
  std::unique_ptr<data::Tokenizer> t;
  if (std::string e = load(o, &t); !e.empty()) return e;
  const std::vector<uint32_t> ids = t->encode(o.text);
  fmt::print("{}\n", fmt::join(ids, " "));
  return "";
}

std::string run_decode(const TokenizerOptions& o) {
  std::unique_ptr<data::Tokenizer> t;
  if (std::string e = load(o, &t); !e.empty()) return e;
  if (std::string e = data::check_ids(*t, o.ids); !e.empty()) return e;
  fmt::print("{}\n", t->decode(o.ids));
  return "";
}

std::string run_shards(const TokenizerOptions& o) {
  if (std::string e = io::check_output_folder(o.output); !e.empty()) return e;
  std::unique_ptr<data::Tokenizer> t;
  if (std::string e = load(o, &t); !e.empty()) return e;
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(o.corpus, data::data_paths_from_environment(), &corpus);
      !e.empty()) {
    return e;
  }
  data::TokenDatasetSummary s;
  if (std::string e = data::write_token_dataset(corpus, *t, o.output, &s); !e.empty()) return e;
  if (o.quiet) return "";
  fmt::print("{}: {} tokens\n{}: {} tokens ({})\nvocab size {} ({} tokenizer)\n",
             s.train_path.string(), s.train_tokens, s.validation_path.string(), s.validation_tokens,
             corpus.validation_files.empty() ? "the last 10% of the corpus"
                                             : "the corpus's validation files",
             s.vocab_size, t->kind());
  return "";
}

}  // namespace

void register_tokenizer(CLI::App& app) {
  static TokenizerOptions o;
  CLI::App* cmd = app.add_subcommand("tokenizer", "Train, run and apply tokenizers");
  cmd->require_subcommand(1);
  const std::string corpus_help =
      "Corpus: sotu, study, tinyshakespeare, wikitext2, a text file, or a folder of .txt files";
  const std::string tokenizer_help =
      "Tokenizer: a SentencePiece .model, a llama2.c .bin, GPT-2's folder or encoder.json, "
      "or gpt2 (from MX_DATA_DIR)";

  CLI::App* train = cmd->add_subcommand("train", "Train a SentencePiece BPE model on a corpus");
  train->add_option("corpus", o.corpus, corpus_help)->required();
  train->add_option("--vocab", o.train.vocab_size, "Vocabulary size")
      ->check(integer_in(260, 1 << 20))
      ->required();
  train->add_option("-o,--output", o.output, "Model file to write")->required();
  train
      ->add_option("--max-sentences", o.train.max_sentences,
                   "Train on at most this many lines, in corpus order")
      ->check(integer_in(1))
      ->capture_default_str();
  train->add_option("--max-bytes", o.max_bytes, "Read at most this many bytes (0: all)")
      ->check(integer_in(0))
      ->capture_default_str();
  train->add_option("--threads", o.train.threads, "Training threads")
      ->check(integer_in(1, kMaxThreads))
      ->capture_default_str();
  train->add_flag("-q,--quiet", o.quiet, "No summary");
  train->callback([] { run_command("tokenizer train", [] { return run_train(o); }); });

  CLI::App* encode = cmd->add_subcommand("encode", "Print the token ids of a text");
  encode->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  encode->add_option("text", o.text, "Text to encode")->required();
  encode->callback([] { run_command("tokenizer encode", [] { return run_encode(o); }); });

  CLI::App* decode = cmd->add_subcommand("decode", "Print the text of token ids");
  decode->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  decode->add_option("ids", o.ids, "Token ids")
      ->check(integer_in(0, std::numeric_limits<uint32_t>::max()))
      ->required();
  decode->callback([] { run_command("tokenizer decode", [] { return run_decode(o); }); });

  CLI::App* shards = cmd->add_subcommand(
      "shards", "Tokenize a corpus into DIR/train.bin and DIR/val.bin for training");
  shards->add_option("--tokenizer", o.tokenizer, tokenizer_help)->required();
  shards->add_option("--data", o.corpus, corpus_help)->required();
  shards->add_option("-o,--output", o.output, "Output folder")->required();
  shards->add_flag("-q,--quiet", o.quiet, "No summary");
  shards->callback([] { run_command("tokenizer shards", [] { return run_shards(o); }); });
}

}  // namespace mx::tools
