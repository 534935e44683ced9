#include "mx/train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mx/data/corpus.h"
#include "mx/data/llmc_shards.h"
#include "mx/data/token_dataset.h"
#include "mx/data/token_shard.h"
#include "mx/data/token_shard_folder.h"
#include "mx/data/tokenizer.h"
#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;
using io::cat;

constexpr const char* kSourceFile = "source.json";

std::string source_json(const TrainConfig& c) {
  nlohmann::json j = nlohmann::json::object();
  j["data"] = c.data;
  j["tokenizer"] = c.tokenizer;
  return j.dump();
}

// A folder of llm.c shards, already tokenized: its splits copied into the run's shards.
std::string import_llmc_shards(const std::string& folder, uint32_t vocab, const fs::path& dir) {
  data::LlmcShards shards;
  if (std::string e = data::find_llmc_shards(folder, &shards); !e.empty()) return e;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return cat("cannot create ", dir.string(), ": ", ec.message());
  for (const auto& [files, name] :
       {std::pair{&shards.train, "train.bin"}, std::pair{&shards.validation, "val.bin"}}) {
    double count = 0;
    for (const fs::path& file : *files) {
      int64_t n = 0;
      if (std::string e = data::llmc_shard_token_count(file, &n); !e.empty()) return e;
      count += double(n);
    }
    // The tokens as uint32, and write_shard's payload of 2 or 4 bytes a token beside them.
    const double bytes_per_token = 4.0 + (vocab <= 65536 ? 2.0 : 4.0);
    if (std::string e =
            io::check_memory(bytes_per_token * count, cat("reading the shards of ", folder));
        !e.empty()) {
      return e;
    }
    std::vector<uint32_t> tokens;
    for (const fs::path& file : *files) {
      if (std::string e = data::read_llmc_shard(file, vocab, &tokens); !e.empty()) return e;
    }
    if (std::string e = data::write_shard(dir / name, tokens, vocab); !e.empty()) return e;
  }
  return "";
}

// The record's text, or "" when there is none.
std::string read_source(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return in ? text.str() : "";
}

}  // namespace

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string RunFolderLock::acquire(const std::string& run_dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) return cat("cannot create ", run_dir, ": ", ec.message());
  const std::string path = (fs::path(run_dir) / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return cat("cannot open ", path, ": ", std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[32] = {};
    (void)!::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (err != EWOULDBLOCK) return cat("cannot lock ", path, ": ", std::strerror(err));
    const std::string pid(holder);
    const bool known = !pid.empty() && pid.find_first_not_of("0123456789") == std::string::npos;
    return cat(run_dir, " is in use by another mx train",
               known ? cat(" (process ", pid, ")") : std::string());
  }
  // The holder's process id, for the message a second run prints.
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the id; only the message is poorer.
  }
  fd_ = fd;
  return "";
}

std::string prepare_run_data(const TrainConfig& config, const std::string& run_dir, bool resuming,
                             const data::DataPaths& paths,
                             const std::function<void(const std::string&)>& on_message) {
  const fs::path dir = fs::path(run_dir) / "data";
  std::error_code ec;
  const bool shards = fs::exists(dir / "train.bin", ec) && fs::exists(dir / "val.bin", ec);
  const std::string recorded = read_source(dir / kSourceFile), wanted = source_json(config);
  if (shards && (recorded == wanted || (resuming && recorded.empty()))) return "";
  if (resuming && shards) {
    return cat("the tokenized data in ", dir.string(), " was made from ", recorded,
               ", but the checkpoint was trained on ", wanted);
  }
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (std::string e = data::load_tokenizer(config.tokenizer, paths, &tokenizer); !e.empty()) {
    return e;
  }
  // The record goes first, so that shards written under an old record are never taken for new.
  fs::remove(dir / kSourceFile, ec);
  if (data::is_token_shard_folder(config.data)) {
    if (on_message)
      on_message(cat("copying the token shards of ", config.data, " into ", dir.string()));
    if (std::string e =
            data::copy_token_shard_folder(config.data, uint32_t(tokenizer->vocab_size()), dir);
        !e.empty()) {
      return e;
    }
  } else if (data::is_llmc_shard_folder(config.data)) {
    if (on_message)
      on_message(cat("copying the llm.c shards of ", config.data, " into ", dir.string()));
    if (std::string e = import_llmc_shards(config.data, uint32_t(tokenizer->vocab_size()), dir);
        !e.empty()) {
      return e;
    }
  } else {
    data::Corpus corpus;
    if (std::string e = data::resolve_corpus(config.data, paths, &corpus); !e.empty()) return e;
    if (on_message) {
      on_message(
          cat("tokenizing ", config.data, " with ", config.tokenizer, " into ", dir.string()));
    }
    data::TokenDatasetSummary summary;
    if (std::string e = data::write_token_dataset(corpus, *tokenizer, dir, &summary); !e.empty()) {
      return e;
    }
  }
  return io::write_text_atomically((dir / kSourceFile).string(), wanted);
}

}  // namespace mx::train
