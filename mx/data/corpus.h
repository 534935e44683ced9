// Corpora: what `--data` names, resolved to the text files to read.
//
//   sotu             State of the Union addresses, $CACHE/sotu/data/*.txt (one document per
//                    address, 1790 first); fetched by scripts/fetch-corpora.sh.
//                    Validation: the last 10% of tokens (the most recent addresses).
//   study            The study corpus (docs/CORPUS.md): $CACHE/study/train/*.txt and
//                    $CACHE/study/validation/*.txt, one document per file, split by document;
//                    built by scripts/build-study-corpus.sh or unpacked from its .tar.xz.
//   tinyshakespeare  $MX_DATA_DIR/tinyshakespeare/input.txt, one document.
//                    Validation: the last 10% of tokens.
//   wikitext2        $MX_DATA_DIR/wikitext-2: trains on valid.txt and validates on test.txt
//                    (the shared folder has no train.txt; test.txt stays the held-out split).
//   a .txt file      that file, one document; validation: the last 10% of tokens.
//   a folder         its *.txt files in byte-wise name order, one document each;
//                    validation: the last 10% of tokens. (A folder of .bin files and no .txt
//                    is llm.c token shards instead, already tokenized: llmc_shards.h.)
//   a built corpus   a folder that `mx corpus build` wrote (train/, validation/ and
//                    documents.tsv): its two splits, as for study; an empty validation split
//                    leaves the last 10% of the training tokens to validate.
//
// The four names win over same-named files in the working folder; write ./sotu for those.
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/data/paths.h"

namespace mx::data {

inline constexpr std::string_view kCorpusNames[] = {"sotu", "study", "tinyshakespeare",
                                                    "wikitext2"};

// The fraction of a corpus's tokens held out for validation when it has no validation files.
inline constexpr double kValidationFraction = 0.1;

struct Corpus {
  std::string name;                                     // as given
  std::vector<std::filesystem::path> train_files;       // one document each, in order
  std::vector<std::filesystem::path> validation_files;  // empty: the tail of the train tokens
};

// Empty, or one line saying what is missing and how to get it.
std::string resolve_corpus(std::string_view spec, const DataPaths& paths, Corpus* out);

// The files' contents, one string per file.
std::string read_documents(std::span<const std::filesystem::path> files,
                           std::vector<std::string>* out);

// The files' contents joined by newlines (for tokenizer training), at most max_bytes of it
// (0: all); reading stops at the first file that would pass the limit, cut at a line end.
std::string read_text(std::span<const std::filesystem::path> files, size_t max_bytes,
                      std::string* out);

}  // namespace mx::data
