// Building a corpus out of many documents, as scripts/build-study-corpus.sh does for `--data
// study` (docs/CORPUS.md): one cleaning pass over each document, removal of exact duplicates,
// and a split into train and validation by whole documents.
//
// Every step is deterministic: the output depends only on the input bytes, the order of the
// sources and the validation share, never on the machine, the locale or a clock.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mx::data {

// The cleaning pass, in this order:
//  1. bytes are read as UTF-8; a byte that is not part of a valid UTF-8 sequence is taken as a
//     Windows-1252 character (older e-mail and manuals are in that code page or Latin-1, its
//     subset), so no text is lost and the output is valid UTF-8;
//  2. CR LF and lone CR become LF; form feed and vertical tab become LF;
//  3. other control characters (C0 but tab and LF, DEL, C1) and U+FEFF are dropped; no-break
//     space (U+00A0) becomes a space;
//  4. spaces and tabs at the end of each line are dropped;
//  5. runs of blank lines become one blank line; blank lines at the start and the end go;
//  6. a document with any text ends with exactly one LF; one with none becomes empty.
std::string clean_document(std::string_view raw);

// 64-bit FNV-1a: a fixed hash that is the same on every machine (std::hash is not).
uint64_t fnv1a64(std::string_view bytes);

// Whether the document named `id` (source/name) is held out for validation: the id's FNV-1a
// hash modulo 1000 is below per_mille. Keyed by the name, not the text, so a document stays on
// its side when the cleaning changes.
bool goes_to_validation(std::string_view id, uint32_t per_mille);

// For each document, the index of the first document with identical bytes before it, or
// npos when it is the first of its kind. Exact comparison: a hash collision never merges two
// different documents.
std::vector<size_t> exact_duplicates(std::span<const std::string> documents);

// A document name is a non-empty run of [A-Za-z0-9._-] that does not start with a dot.
bool is_document_name(std::string_view name);

// Splitting a dictd database (the .index and the uncompressed .dict of the dict-* packages)
// into documents.
struct DictdEntry {
  std::string headword;
  uint64_t offset = 0, length = 0;  // bytes of the definition in the .dict file
};

// Reads the index: one "headword TAB offset TAB length" line each, numbers in dictd's base 64
// (A-Z a-z 0-9 + /, most significant digit first).
std::string parse_dictd_index(std::string_view index, std::vector<DictdEntry>* out);

// The definitions in the order they sit in the .dict file, each once (headwords sharing one
// definition give it once), without the database's own entries (headwords starting with "00-"
// or "00database"), joined into documents of at least min_bytes each (the last may be
// shorter). A definition is never cut.
std::string dictd_documents(std::string_view index, std::string_view dict, size_t min_bytes,
                            std::vector<std::string>* out);

// Writes texts[i] to dir/NNNNN.txt (i in five or more digits), the folder whole or not at all
// (as build_corpus does); dir must not exist.
std::string write_numbered_documents(const std::filesystem::path& dir,
                                     std::span<const std::string> texts);

// Building the corpus folder from source folders.
struct CorpusBuildOptions {
  uint32_t validation_per_mille = 10;  // share of documents held out, by name (see above)
};

struct CorpusSourceSummary {
  std::string name;         // the source folder's name
  uint64_t documents = 0;   // *.txt files read
  uint64_t empty = 0;       // with no text after cleaning, dropped
  uint64_t duplicates = 0;  // identical to an earlier document, dropped
  uint64_t train_documents = 0, validation_documents = 0;
  uint64_t train_bytes = 0, validation_bytes = 0;  // after cleaning
};

// Reads every SOURCE/*.txt of the given folders (sources in the order given, files in byte-wise
// name order), cleans each, drops empty documents and exact duplicates (the first one is kept),
// and writes out_dir/train/SOURCE.NAME.txt or out_dir/validation/SOURCE.NAME.txt, plus
// out_dir/documents.tsv listing every input document and what became of it. out_dir must not
// exist: the folder is built beside it under a temporary name and renamed when complete, so it
// is there whole or not at all. Source folder names and file names must be document names.
std::string build_corpus(std::span<const std::filesystem::path> source_dirs,
                         const std::filesystem::path& out_dir, const CorpusBuildOptions& options,
                         std::vector<CorpusSourceSummary>* summary);

}  // namespace mx::data
