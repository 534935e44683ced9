#include "mx/train/run_summary.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"

namespace mx::train {
namespace {

using io::cat;
using json = nlohmann::json;

constexpr const char* kConfigKey = "mxkit.train";
constexpr int64_t kMaxBytes = 1 << 20;  // a summary is a few hundred bytes

}  // namespace

std::string write_run_summary(const std::string& path, const RunSummary& summary) {
  const json j = {{kConfigKey, json::parse(train_config_to_json(summary.config))},
                  {"step", summary.step},
                  {"train_tokens", summary.train_tokens}};
  return io::write_text_atomically(path, j.dump(1) + "\n");
}

std::string read_run_summary(const std::string& path, RunSummary* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return cat(path, ": cannot be read");
  std::string text(size_t(kMaxBytes) + 1, '\0');
  in.read(text.data(), std::streamsize(text.size()));
  text.resize(size_t(in.gcount()));
  if (int64_t(text.size()) > kMaxBytes) return cat(path, ": larger than a run summary can be");
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.size() != 3 || !j.contains(kConfigKey) || !j[kConfigKey].is_object() ||
      !j.contains("step") || !j["step"].is_number_integer() || !j.contains("train_tokens") ||
      !j["train_tokens"].is_number_integer()) {
    return cat(path, ": not a run summary (mxkit.train, step, train_tokens)");
  }
  RunSummary s;
  if (std::string e = parse_train_config_json(j[kConfigKey].dump(), &s.config); !e.empty()) {
    return cat(path, ": ", e);
  }
  if (std::string e = validate(s.config); !e.empty()) return cat(path, ": ", e);
  s.step = j["step"].get<int64_t>();
  s.train_tokens = j["train_tokens"].get<int64_t>();
  if (s.step < 0 || s.step > s.config.steps) {
    return cat(path, ": step ", s.step, " outside the run's 0 .. ", s.config.steps);
  }
  if (s.train_tokens < 0) return cat(path, ": a negative token count");
  *out = std::move(s);
  return "";
}

}  // namespace mx::train
