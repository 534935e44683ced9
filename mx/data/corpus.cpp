#include "mx/data/corpus.h"

#include <algorithm>

#include "mx/io/read_file.h"

namespace mx::data {
namespace fs = std::filesystem;
namespace {

std::string txt_files_in(const fs::path& folder, std::vector<fs::path>* out) {
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().extension() == ".txt" && entry.is_regular_file(ec)) {
      files.push_back(entry.path());
    }
  }
  if (ec) return "cannot list " + folder.string() + ": " + ec.message();
  if (files.empty()) return "no .txt files in " + folder.string();
  // Byte-wise order of the names, the same on every machine and locale.
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    return a.filename().string() < b.filename().string();
  });
  *out = std::move(files);
  return "";
}

std::string need_data_dir(std::string_view name, const DataPaths& paths) {
  if (!paths.data_dir.empty()) return "";
  return "corpus '" + std::string(name) +
         "' is read from MX_DATA_DIR, which is not set (point it at the shared data folder)";
}

std::string need_file(std::string_view name, const fs::path& file) {
  std::error_code ec;
  if (fs::is_regular_file(file, ec)) return "";
  return "corpus '" + std::string(name) + "' not found: " + file.string() +
         " is missing (check MX_DATA_DIR)";
}

std::string resolve_named(std::string_view name, const DataPaths& paths, Corpus* c) {
  if (name == "sotu") {
    if (paths.cache_dir.empty()) {
      return "corpus 'sotu' needs a cache folder: set MX_CACHE_DIR or HOME, then run "
             "scripts/fetch-corpora.sh";
    }
    const fs::path folder = paths.cache_dir / "sotu" / "data";
    std::error_code ec;
    if (!fs::is_directory(folder, ec) || !txt_files_in(folder, &c->train_files).empty()) {
      return "corpus 'sotu' not found in " + (paths.cache_dir / "sotu").string() +
             "; run scripts/fetch-corpora.sh";
    }
    return "";
  }
  if (name == "study") {
    if (paths.cache_dir.empty()) {
      return "corpus 'study' needs a cache folder: set MX_CACHE_DIR or HOME, then run "
             "scripts/build-study-corpus.sh";
    }
    const fs::path root = paths.cache_dir / "study";
    std::error_code ec;
    if (!fs::is_directory(root / "train", ec) || !fs::is_directory(root / "validation", ec) ||
        !txt_files_in(root / "train", &c->train_files).empty() ||
        !txt_files_in(root / "validation", &c->validation_files).empty()) {
      return "corpus 'study' not found in " + root.string() +
             "; run scripts/build-study-corpus.sh, or unpack study-corpus.tar.xz into " +
             paths.cache_dir.string();
    }
    return "";
  }
  if (std::string e = need_data_dir(name, paths); !e.empty()) return e;
  if (name == "tinyshakespeare") {
    const fs::path file = paths.data_dir / "tinyshakespeare" / "input.txt";
    if (std::string e = need_file(name, file); !e.empty()) return e;
    c->train_files = {file};
    return "";
  }
  const fs::path dir = paths.data_dir / "wikitext-2";
  for (const char* split : {"valid.txt", "test.txt"}) {
    if (std::string e = need_file(name, dir / split); !e.empty()) return e;
  }
  c->train_files = {dir / "valid.txt"};
  c->validation_files = {dir / "test.txt"};
  return "";
}

}  // namespace

std::string resolve_corpus(std::string_view spec, const DataPaths& paths, Corpus* out) {
  Corpus c;
  c.name = std::string(spec);
  if (spec.empty()) return "no corpus given";
  if (std::find(std::begin(kCorpusNames), std::end(kCorpusNames), spec) != std::end(kCorpusNames)) {
    if (std::string e = resolve_named(spec, paths, &c); !e.empty()) return e;
    *out = std::move(c);
    return "";
  }
  const fs::path path(spec);
  std::error_code ec;
  if (fs::is_directory(path / "train", ec) && fs::is_directory(path / "validation", ec) &&
      fs::exists(path / "documents.tsv", ec)) {
    // A folder that `mx corpus build` wrote: its splits, the validation one possibly empty
    // (then the tail of the training tokens validates, as for any folder).
    if (std::string e = txt_files_in(path / "train", &c.train_files); !e.empty()) {
      return "corpus " + path.string() + ": " + e;
    }
    std::vector<fs::path> validation;
    if (txt_files_in(path / "validation", &validation).empty()) {
      c.validation_files = std::move(validation);
    }
  } else if (fs::is_directory(path, ec)) {
    if (std::string e = txt_files_in(path, &c.train_files); !e.empty()) {
      return "corpus " + path.string() + ": " + e;
    }
  } else if (fs::is_regular_file(path, ec)) {
    c.train_files = {path};
  } else {
    std::string names;
    for (std::string_view n : kCorpusNames) names += (names.empty() ? "" : ", ") + std::string(n);
    return "corpus '" + c.name + "' is neither a file, a folder nor a known name (" + names + ")";
  }
  *out = std::move(c);
  return "";
}

std::string read_documents(std::span<const fs::path> files, std::vector<std::string>* out) {
  std::vector<std::string> docs(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    if (std::string e = io::read_whole_file(files[i], &docs[i]); !e.empty()) return e;
  }
  *out = std::move(docs);
  return "";
}

std::string read_text(std::span<const fs::path> files, size_t max_bytes, std::string* out) {
  std::string text, doc;
  for (const fs::path& f : files) {
    if (std::string e = io::read_whole_file(f, &doc); !e.empty()) return e;
    if (max_bytes && text.size() + doc.size() > max_bytes) {
      // Up to the last whole line that fits.
      const size_t room = max_bytes > text.size() ? max_bytes - text.size() : 0;
      const size_t cut = room > 0 ? doc.rfind('\n', room - 1) : std::string::npos;
      if (cut != std::string::npos) text.append(doc, 0, cut + 1);
      break;
    }
    text += doc;
    if (!text.empty() && text.back() != '\n') text += '\n';
  }
  *out = std::move(text);
  return "";
}

}  // namespace mx::data
