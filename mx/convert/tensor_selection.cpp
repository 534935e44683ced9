#include "mx/convert/tensor_selection.h"

#include <tuple>

#include "mx/core/block_grid.h"
#include "mx/io/cat.h"

namespace mx::convert {
namespace {

const std::regex& embedding_pattern() {
  static const std::regex re("embed|wte|wpe|tok_embeddings|token_embd|lm_head|^output\\.weight$",
                             std::regex::icase);
  return re;
}

const std::regex& norm_pattern() {
  static const std::regex re("norm|rms_|(^|\\.)ln_", std::regex::icase);
  return re;
}

std::string compile(const std::string& text, const char* flag, std::regex* out) {
  if (text.empty()) return "";
  try {
    *out = std::regex(text);
  } catch (const std::regex_error& e) {
    return io::cat("bad ", flag, " regular expression '", text, "': ", e.what());
  }
  return "";
}

}  // namespace

bool is_embedding_name(const std::string& name) {
  return std::regex_search(name, embedding_pattern());
}

bool is_norm_name(const std::string& name) {
  return std::regex_search(name, norm_pattern());
}

std::string make_selector(const SelectionRules& rules, TensorSelector* out) {
  TensorSelector s;
  s.rules_ = rules;
  if (std::string e = compile(rules.only, "--only", &s.only_); !e.empty()) return e;
  if (std::string e = compile(rules.skip, "--skip", &s.skip_); !e.empty()) return e;
  *out = std::move(s);
  return "";
}

std::string TensorSelector::reason_to_keep(const std::string& name,
                                           std::span<const int64_t> shape) const {
  if (element_count(shape) == 0) return "empty";
  if (!rules_.skip.empty() && std::regex_search(name, skip_)) return "--skip";
  if (!rules_.only.empty()) {
    return std::regex_search(name, only_) ? "" : "not matched by --only";
  }
  if (!rules_.include_embeddings && is_embedding_name(name)) return "embedding";
  if (!rules_.include_norms && is_norm_name(name)) return "norm";
  if (!rules_.include_vectors && shape.size() < 2) return "1-D";
  return "";
}

std::string TensorSelector::check_matches(std::span<const std::string> names,
                                          const std::string& file) const {
  for (const auto& [text, re, flag] :
       {std::tuple{&rules_.only, &only_, "--only"}, std::tuple{&rules_.skip, &skip_, "--skip"}}) {
    if (text->empty()) continue;
    bool matched = false;
    for (const std::string& name : names) matched = matched || std::regex_search(name, *re);
    if (!matched) return io::cat(flag, " '", *text, "' matches no tensor name of ", file);
  }
  return "";
}

}  // namespace mx::convert
