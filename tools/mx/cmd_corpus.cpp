// `mx corpus`: the text steps of building a corpus from many documents (used by
// scripts/build-study-corpus.sh; docs/CORPUS.md). `build` cleans, removes exact duplicates and
// splits by document; `dictd` turns a dictd dictionary into documents.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "mx/data/corpus_build.h"
#include "mx/io/atomic_file.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct CorpusOptions {
  std::vector<std::string> sources;
  std::string output;
  std::string index, dict;
  uint32_t validation_per_mille = data::CorpusBuildOptions{}.validation_per_mille;
  size_t min_bytes = 65536;
};

std::string read_file(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot read " + path;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return "error reading " + path;
  *out = std::move(s).str();
  return "";
}

std::string run_build(const CorpusOptions& o) {
  if (std::string e = io::check_output_folder(o.output); !e.empty()) return e;
  const std::vector<std::filesystem::path> dirs(o.sources.begin(), o.sources.end());
  data::CorpusBuildOptions options;
  options.validation_per_mille = o.validation_per_mille;
  std::vector<data::CorpusSourceSummary> summary;
  if (std::string e = data::build_corpus(dirs, o.output, options, &summary); !e.empty()) return e;
  fmt::print("{:<24} {:>8} {:>6} {:>10} {:>8} {:>13} {:>8} {:>11}\n", "source", "read", "empty",
             "duplicate", "train", "train bytes", "valid.", "valid. bytes");
  data::CorpusSourceSummary total;
  total.name = "total";
  const auto row = [](const data::CorpusSourceSummary& s) {
    fmt::print("{:<24} {:>8} {:>6} {:>10} {:>8} {:>13} {:>8} {:>11}\n", s.name, s.documents,
               s.empty, s.duplicates, s.train_documents, s.train_bytes, s.validation_documents,
               s.validation_bytes);
  };
  for (const data::CorpusSourceSummary& s : summary) {
    row(s);
    total.documents += s.documents;
    total.empty += s.empty;
    total.duplicates += s.duplicates;
    total.train_documents += s.train_documents;
    total.train_bytes += s.train_bytes;
    total.validation_documents += s.validation_documents;
    total.validation_bytes += s.validation_bytes;
  }
  row(total);
  fmt::print("{}: train/ and validation/ ({} per mille of the documents, by name)\n", o.output,
             o.validation_per_mille);
  return "";
}

std::string run_dictd(const CorpusOptions& o) {
  if (std::string e = io::check_output_folder(o.output); !e.empty()) return e;
  std::string index, dict;
  if (std::string e = read_file(o.index, &index); !e.empty()) return e;
  if (std::string e = read_file(o.dict, &dict); !e.empty()) return e;
  std::vector<std::string> docs;
  if (std::string e = data::dictd_documents(index, dict, o.min_bytes, &docs); !e.empty()) return e;
  if (std::string e = data::write_numbered_documents(o.output, docs); !e.empty()) return e;
  fmt::print("{}: {} documents\n", o.output, docs.size());
  return "";
}

}  // namespace

void register_corpus(CLI::App& app) {
  static CorpusOptions o;
  CLI::App* cmd = app.add_subcommand("corpus", "Build a corpus folder from many documents");
  cmd->require_subcommand(1);

  CLI::App* build = cmd->add_subcommand(
      "build",
      "Clean every SOURCE/*.txt, drop empty documents and exact duplicates, and split by "
      "document into OUT/train and OUT/validation");
  build->add_option("sources", o.sources, "Source folders, earlier ones win duplicates")
      ->required();
  build->add_option("-o,--output", o.output, "Corpus folder to create (must not exist)")
      ->required();
  build
      ->add_option("--validation-per-mille", o.validation_per_mille,
                   "Documents held out for validation, per thousand, chosen by name")
      ->check(integer_in(0, 1000))
      ->capture_default_str();
  build->callback([] { run_command("corpus build", [] { return run_build(o); }); });

  CLI::App* dictd = cmd->add_subcommand(
      "dictd", "Split a dictd dictionary (.index and uncompressed .dict) into documents");
  dictd->add_option("index", o.index, "The .index file")->required();
  dictd->add_option("dict", o.dict, "The .dict file, uncompressed")->required();
  dictd->add_option("-o,--output", o.output, "Folder to create for DIR/NNNNN.txt (must not exist)")
      ->required();
  dictd
      ->add_option("--min-bytes", o.min_bytes,
                   "Join whole definitions into documents of at least this many bytes")
      ->check(integer_in(1))
      ->capture_default_str();
  dictd->callback([] { run_command("corpus dictd", [] { return run_dictd(o); }); });
}

}  // namespace mx::tools
