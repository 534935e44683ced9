#include "mx/data/corpus_build.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <utility>

#include "mx/data/token_shard.h"
#include "mx/data/unicode.h"
#include "mx/io/read_file.h"

namespace mx::data {
namespace fs = std::filesystem;
namespace {

// Windows-1252 at 0x80..0x9F; its five unassigned bytes stay C1 controls, which cleaning drops.
// 0xA0..0xFF are Latin-1, the same code points as the bytes.
constexpr std::array<char32_t, 32> kWindows1252High = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

char32_t windows1252(uint8_t byte) {
  return byte >= 0x80 && byte < 0xA0 ? kWindows1252High[byte - 0x80] : char32_t(byte);
}

bool is_dropped(char32_t c) {
  return (c < 0x20 && c != '\t') || (c >= 0x7F && c <= 0x9F) || c == 0xFEFF;
}

// Value of one dictd base-64 digit, or -1.
int dictd_digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool parse_dictd_number(std::string_view digits, uint64_t* out) {
  if (digits.empty() || digits.size() > 10) return false;  // 60 bits at most
  uint64_t v = 0;
  for (char c : digits) {
    const int d = dictd_digit(c);
    if (d < 0) return false;
    v = v * 64 + uint64_t(d);
  }
  *out = v;
  return true;
}

bool is_database_entry(std::string_view headword) {
  return headword.starts_with("00-") || headword.starts_with("00database");
}

// Into the build's staging folder, which is renamed into place whole, so no temporary of its
// own; errors say why (a full disk).
std::string write_whole_file(const fs::path& path, std::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return "cannot create " + path.string() + ": " + std::strerror(errno);
  while (!text.empty()) {
    const ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      return "cannot write " + path.string() + ": " + std::strerror(err);
    }
    text.remove_prefix(size_t(n));
  }
  if (::close(fd) != 0) return "cannot write " + path.string() + ": " + std::strerror(errno);
  return "";
}

// The source's name: the folder's last component, without dots (they separate it from the
// document name in the output file names).
std::string source_name(const fs::path& dir) {
  fs::path p = dir.lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string list_documents(const fs::path& dir, std::vector<std::string>* names) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "source " + dir.string() + " is not a folder";
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".txt" && entry.is_regular_file(ec)) {
      found.push_back(entry.path().stem().string());
    }
  }
  if (ec) return "cannot list " + dir.string() + ": " + ec.message();
  std::sort(found.begin(), found.end());  // byte-wise, the same in every locale
  for (const std::string& n : found) {
    if (!is_document_name(n)) {
      return "document name '" + n + "' in " + dir.string() +
             " has characters other than letters, digits, '.', '_' and '-'";
    }
  }
  *names = std::move(found);
  return "";
}

// A sibling of `out_dir` to build in, removed first if an interrupted build left it.
std::string make_partial_dir(const fs::path& out_dir, fs::path* partial) {
  std::error_code ec;
  if (fs::exists(out_dir, ec)) return out_dir.string() + " already exists";
  fs::path dir = out_dir.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  std::string name = ".";  // hidden, and never a corpus name
  name += dir.filename().string();
  name += ".partial";
  *partial = dir.parent_path() / name;
  fs::remove_all(*partial, ec);
  if (ec) return "cannot remove " + partial->string() + ": " + ec.message();
  fs::create_directories(*partial, ec);
  if (ec) return "cannot create " + partial->string() + ": " + ec.message();
  return "";
}

std::string finish_partial_dir(const fs::path& partial, const fs::path& out_dir) {
  std::error_code ec;
  fs::rename(partial, out_dir, ec);
  if (ec)
    return "cannot rename " + partial.string() + " to " + out_dir.string() + ": " + ec.message();
  return "";
}

std::string hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[size_t(i)] = kDigits[v & 15];
  return s;
}

}  // namespace

std::string clean_document(std::string_view raw) {
  std::string out, line;
  out.reserve(raw.size());
  bool text_seen = false, blank_pending = false;
  const auto end_line = [&] {
    size_t n = line.size();
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t')) --n;
    line.resize(n);
    if (line.empty()) {
      blank_pending = text_seen;  // kept only if text follows
    } else {
      if (blank_pending) out += '\n';
      blank_pending = false;
      out += line;
      out += '\n';
      text_seen = true;
    }
    line.clear();
  };
  for (size_t pos = 0; pos < raw.size();) {
    const Utf8Step step = decode_utf8(raw, pos);
    pos += size_t(step.length);
    const char32_t c = step.valid ? step.codepoint : windows1252(uint8_t(step.codepoint));
    if (c == '\r') {
      if (pos < raw.size() && raw[pos] == '\n') ++pos;
      end_line();
    } else if (c == '\n' || c == '\f' || c == '\v') {
      end_line();
    } else if (c == 0xA0) {
      line += ' ';
    } else if (!is_dropped(c)) {
      append_utf8(c, &line);
    }
  }
  end_line();
  return out;
}

uint64_t fnv1a64(std::string_view bytes) {
  return fnv1a64(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
}

bool goes_to_validation(std::string_view id, uint32_t per_mille) {
  return fnv1a64(id) % 1000 < per_mille;
}

std::vector<size_t> exact_duplicates(std::span<const std::string> documents) {
  std::vector<size_t> first(documents.size(), std::string::npos);
  std::unordered_map<std::string_view, size_t> seen;
  seen.reserve(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) {
    const auto [it, inserted] = seen.emplace(documents[i], i);
    if (!inserted) first[i] = it->second;
  }
  return first;
}

bool is_document_name(std::string_view name) {
  if (name.empty() || name.front() == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string parse_dictd_index(std::string_view index, std::vector<DictdEntry>* out) {
  std::vector<DictdEntry> entries;
  size_t line_no = 0;
  for (size_t pos = 0; pos < index.size();) {
    size_t end = index.find('\n', pos);
    if (end == std::string_view::npos) end = index.size();
    const std::string_view line = index.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.empty()) continue;
    const size_t t1 = line.find('\t');
    const size_t t2 = t1 == std::string_view::npos ? t1 : line.find('\t', t1 + 1);
    DictdEntry e;
    if (t2 == std::string_view::npos || line.find('\t', t2 + 1) != std::string_view::npos ||
        !parse_dictd_number(line.substr(t1 + 1, t2 - t1 - 1), &e.offset) ||
        !parse_dictd_number(line.substr(t2 + 1), &e.length)) {
      return "dictd index line " + std::to_string(line_no) +
             ": expected a headword, an offset and a length separated by tabs";
    }
    e.headword = std::string(line.substr(0, t1));
    entries.push_back(std::move(e));
  }
  *out = std::move(entries);
  return "";
}

std::string dictd_documents(std::string_view index, std::string_view dict, size_t min_bytes,
                            std::vector<std::string>* out) {
  std::vector<DictdEntry> entries;
  if (std::string e = parse_dictd_index(index, &entries); !e.empty()) return e;
  std::vector<std::pair<uint64_t, uint64_t>> spans;  // offset, length
  for (const DictdEntry& e : entries) {
    if (is_database_entry(e.headword)) continue;
    if (e.offset > dict.size() || e.length > dict.size() - e.offset) {
      return "dictd index entry '" + e.headword + "' points past the end of the " +
             std::to_string(dict.size()) + "-byte dictionary";
    }
    spans.emplace_back(e.offset, e.length);
  }
  std::sort(spans.begin(), spans.end());
  spans.erase(std::unique(spans.begin(), spans.end()), spans.end());
  std::vector<std::string> docs;
  std::string doc;
  for (const auto& [offset, length] : spans) {
    if (!doc.empty()) doc += '\n';  // a blank line between definitions
    doc.append(dict.substr(offset, length));
    if (!doc.empty() && doc.back() != '\n') doc += '\n';
    if (doc.size() >= min_bytes) docs.push_back(std::exchange(doc, {}));
  }
  if (!doc.empty()) docs.push_back(std::move(doc));
  if (docs.empty()) return "the dictd index lists no definition";
  *out = std::move(docs);
  return "";
}

std::string write_numbered_documents(const fs::path& dir, std::span<const std::string> texts) {
  fs::path partial;
  if (std::string e = make_partial_dir(dir, &partial); !e.empty()) return e;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string name = std::to_string(i);
    if (name.size() < 5) name.insert(0, 5 - name.size(), '0');
    if (std::string e = write_whole_file(partial / (name + ".txt"), texts[i]); !e.empty()) {
      std::error_code ignored;
      fs::remove_all(partial, ignored);
      return e;
    }
  }
  return finish_partial_dir(partial, dir);
}

std::string build_corpus(std::span<const fs::path> source_dirs, const fs::path& out_dir,
                         const CorpusBuildOptions& options,
                         std::vector<CorpusSourceSummary>* summary) {
  if (source_dirs.empty()) return "no source folders given";
  if (options.validation_per_mille > 1000) {
    return "validation share " + std::to_string(options.validation_per_mille) +
           " per mille is more than 1000";
  }
  struct Document {
    size_t source;
    std::string name, text;
  };
  std::vector<CorpusSourceSummary> sources;
  std::vector<Document> docs;
  for (const fs::path& dir : source_dirs) {
    CorpusSourceSummary s;
    s.name = source_name(dir);
    if (!is_document_name(s.name) || s.name.find('.') != std::string::npos) {
      return "source folder name '" + s.name +
             "' must be letters, digits, '_' and '-' (it prefixes the document names)";
    }
    for (const CorpusSourceSummary& other : sources) {
      if (other.name == s.name) return "source '" + s.name + "' is given twice";
    }
    std::vector<std::string> names;
    if (std::string e = list_documents(dir, &names); !e.empty()) return e;
    s.documents = names.size();
    for (std::string& name : names) {
      std::string raw;
      if (std::string e = io::read_whole_file(dir / (name + ".txt"), &raw); !e.empty()) return e;
      docs.push_back({sources.size(), std::move(name), clean_document(raw)});
    }
    sources.push_back(std::move(s));
  }

  std::vector<std::string> texts(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) texts[i] = std::move(docs[i].text);
  const std::vector<size_t> duplicate_of = exact_duplicates(texts);

  fs::path partial;
  if (std::string e = make_partial_dir(out_dir, &partial); !e.empty()) return e;
  // Removes the partial folder unless it became out_dir.
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ignored;
      if (!dir.empty()) fs::remove_all(dir, ignored);
    }
  } cleanup{partial};
  std::error_code ec;
  for (const char* split : {"train", "validation"}) {
    fs::create_directories(partial / split, ec);
    if (ec) return "cannot create " + (partial / split).string() + ": " + ec.message();
  }
  const auto file_name = [&](size_t i) {
    return sources[docs[i].source].name + "." + docs[i].name + ".txt";
  };
  std::string table = "split\tfile\tbytes\tfnv1a64\tsame_as\n";
  for (size_t i = 0; i < docs.size(); ++i) {
    CorpusSourceSummary& s = sources[docs[i].source];
    const std::string& text = texts[i];
    if (text.empty()) {
      ++s.empty;
      table += "empty\t" + file_name(i) + "\t0\t-\t-\n";
      continue;
    }
    if (duplicate_of[i] != std::string::npos) {
      ++s.duplicates;
      table += "duplicate\t" + file_name(i) + "\t" + std::to_string(text.size()) + "\t" +
               hex64(fnv1a64(text)) + "\t" + file_name(duplicate_of[i]) + "\n";
      continue;
    }
    const bool validation =
        goes_to_validation(s.name + "/" + docs[i].name, options.validation_per_mille);
    const char* split = validation ? "validation" : "train";
    if (std::string e = write_whole_file(partial / split / file_name(i), text); !e.empty()) {
      return e;
    }
    (validation ? s.validation_documents : s.train_documents) += 1;
    (validation ? s.validation_bytes : s.train_bytes) += text.size();
    table += std::string(split) + "\t" + file_name(i) + "\t" + std::to_string(text.size()) + "\t" +
             hex64(fnv1a64(text)) + "\t-\n";
  }
  // A corpus of no document at all is most likely built from the wrong folders.
  uint64_t kept = 0;
  for (const CorpusSourceSummary& source : sources) {
    kept += source.train_documents + source.validation_documents;
  }
  if (kept == 0) {
    return "no document to keep: the sources hold no .txt file that is neither empty nor a "
           "duplicate";
  }
  if (std::string e = write_whole_file(partial / "documents.tsv", table); !e.empty()) return e;
  if (std::string e = finish_partial_dir(partial, out_dir); !e.empty()) return e;
  cleanup.dir.clear();
  *summary = std::move(sources);
  return "";
}

}  // namespace mx::data
