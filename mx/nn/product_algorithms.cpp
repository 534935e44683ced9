#include "mx/nn/product_algorithms.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <optional>
#include <utility>
#include <vector>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/read_file.h"

namespace mx::nn {
namespace {

using io::cat;

constexpr std::string_view kMagic = "mxkit product algorithms 1";

constexpr std::array<std::pair<ProductEpilogue, std::string_view>, 5> kEpilogues = {{
    {ProductEpilogue::kNone, "none"},
    {ProductEpilogue::kBias, "bias"},
    {ProductEpilogue::kGeluAux, "gelu_aux"},
    {ProductEpilogue::kGeluAuxBias, "gelu_aux_bias"},
    {ProductEpilogue::kDgelu, "dgelu"},
}};

std::string_view epilogue_name(ProductEpilogue e) {
  for (const auto& [value, name] : kEpilogues) {
    if (value == e) return name;
  }
  return "?";
}

std::string_view type_name(BufType t) {
  return t == BufType::kBF16 ? "bf16" : "f32";
}

std::optional<BufType> parse_type(std::string_view s) {
  if (s == "bf16") return BufType::kBF16;
  if (s == "f32") return BufType::kF32;
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (true) {
    i = s.find_first_not_of(" \t", i);
    if (i == std::string_view::npos) return out;
    const size_t end = std::min(s.find_first_of(" \t", i), s.size());
    out.push_back(s.substr(i, end - i));
    i = end;
  }
}

std::optional<int64_t> parse_int(std::string_view s, int64_t low) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < low) return std::nullopt;
  return v;
}

// One product's line, its fields after the operand type: each `name=value` once, in any order.
class ProductFields {
 public:
  // "" or what is wrong with the fields.
  std::string read(const std::vector<std::string_view>& fields) {
    for (size_t i = 1; i < fields.size(); ++i) {
      const size_t eq = fields[i].find('=');
      if (eq == std::string_view::npos) return cat("expected name=value, got '", fields[i], "'");
      const std::string_view name = fields[i].substr(0, eq);
      bool known = false;
      for (const std::string_view n : kNames) known = known || n == name;
      if (!known) return cat("unknown field '", name, "'");
      if (!values_.emplace(name, fields[i].substr(eq + 1)).second) {
        return cat("field '", name, "' twice");
      }
    }
    for (const std::string_view n : kNames) {
      if (!values_.contains(n)) return cat("missing field '", n, "'");
    }
    return "";
  }

  std::string flag(std::string_view name, bool* out) const {
    const std::string_view v = values_.at(name);
    if (v != "0" && v != "1") return cat(name, " must be 0 or 1, got '", v, "'");
    *out = v == "1";
    return "";
  }
  std::string transpose(std::string_view name, bool* out) const {
    const std::string_view v = values_.at(name);
    if (v != "T" && v != "N") return cat(name, " must be T or N, got '", v, "'");
    *out = v == "T";
    return "";
  }
  std::string integer(std::string_view name, int64_t low, int64_t* out) const {
    const std::string_view v = values_.at(name);
    const std::optional<int64_t> n = parse_int(v, low);
    if (!n) return cat(name, " must be an integer of at least ", low, ", got '", v, "'");
    *out = *n;
    return "";
  }
  std::string type(std::string_view name, BufType* out) const {
    const std::string_view v = values_.at(name);
    const std::optional<BufType> t = parse_type(v);
    if (!t) return cat(name, " must be bf16 or f32, got '", v, "'");
    *out = *t;
    return "";
  }
  std::string epilogue(ProductEpilogue* out) const {
    const std::string_view v = values_.at("epilogue");
    for (const auto& [value, name] : kEpilogues) {
      if (name == v) {
        *out = value;
        return "";
      }
    }
    return cat("unknown epilogue '", v, "'");
  }

 private:
  static constexpr std::array<std::string_view, 13> kNames = {
      "tf32", "a",   "b", "m",          "n",        "k",        "lda",
      "ldb",  "ldc", "c", "accumulate", "epilogue", "candidate"};
  std::map<std::string_view, std::string_view, std::less<>> values_;
};

std::string parse_product(const std::vector<std::string_view>& fields, int candidates,
                          ProductAlgorithms::Key* key, ProductAlgorithms::Choice* choice) {
  const std::optional<BufType> ab = parse_type(fields[0]);
  if (!ab) return cat("expected a product's operand type (bf16 or f32), got '", fields[0], "'");
  key->ab_type = *ab;
  ProductFields f;
  ProductShape& s = key->shape;
  int64_t candidate = 0;
  std::string e = f.read(fields);
  if (e.empty()) e = f.flag("tf32", &key->tf32);
  if (e.empty()) e = f.transpose("a", &s.trans_a);
  if (e.empty()) e = f.transpose("b", &s.trans_b);
  if (e.empty()) e = f.integer("m", 1, &s.m);
  if (e.empty()) e = f.integer("n", 1, &s.n);
  if (e.empty()) e = f.integer("k", 1, &s.k);
  if (e.empty()) e = f.integer("lda", 1, &s.lda);
  if (e.empty()) e = f.integer("ldb", 1, &s.ldb);
  if (e.empty()) e = f.integer("ldc", 1, &s.ldc);
  if (e.empty()) e = f.type("c", &s.c_type);
  if (e.empty()) e = f.flag("accumulate", &s.accumulate);
  if (e.empty()) e = f.epilogue(&s.epilogue);
  if (e.empty()) e = f.integer("candidate", 0, &candidate);
  if (e.empty() && candidate >= candidates) {
    e = cat("candidate ", candidate, " is not among the first ", candidates);
  }
  choice->candidate = int(candidate);
  return e;
}

}  // namespace

std::string format_product_algorithms(const ProductAlgorithms& a) {
  std::string text = cat(kMagic, "\ndevice ", a.device, "\ncublaslt ", a.cublaslt, "\ncandidates ",
                         a.candidates, "\n");
  for (const auto& [key, choice] : a.choices) {
    const ProductShape& s = key.shape;
    char times[96];
    std::snprintf(times, sizeof times, "  # %.4f ms; the first candidate %.4f ms",
                  double(choice.ms), double(choice.first_ms));
    text += cat(type_name(key.ab_type), " tf32=", int(key.tf32), " a=", s.trans_a ? "T" : "N",
                " b=", s.trans_b ? "T" : "N", " m=", s.m, " n=", s.n, " k=", s.k, " lda=", s.lda,
                " ldb=", s.ldb, " ldc=", s.ldc, " c=", type_name(s.c_type),
                " accumulate=", int(s.accumulate), " epilogue=", epilogue_name(s.epilogue),
                " candidate=", choice.candidate, std::string_view(times), "\n");
  }
  return text;
}

std::string parse_product_algorithms(std::string_view text, const std::string& name,
                                     ProductAlgorithms* out) {
  ProductAlgorithms a;
  int line_number = 0;
  bool have_device = false, have_version = false;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++line_number;
    const auto error = [&](const std::string& what) {
      return cat(name, ":", line_number, ": ", what);
    };
    if (line_number == 1) {
      if (trim(line) != kMagic)
        return error(cat("not a product algorithms file (expected '", kMagic, "')"));
      continue;
    }
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::vector<std::string_view> fields = words(line);
    if (fields[0] == "device") {
      a.device = std::string(trim(line.substr(fields[0].size())));
      have_device = !a.device.empty();
      if (!have_device) return error("the device has no name");
    } else if (fields[0] == "cublaslt" || fields[0] == "candidates") {
      const std::optional<int64_t> v = fields.size() == 2 ? parse_int(fields[1], 1) : std::nullopt;
      if (!v || *v > (fields[0] == "candidates" ? 1024 : int64_t{1} << 40)) {
        return error(cat(fields[0], " needs one positive integer"));
      }
      if (fields[0] == "cublaslt") {
        a.cublaslt = *v;
        have_version = true;
      } else {
        a.candidates = int(*v);
      }
    } else {
      if (a.candidates == 0) return error("a product before the 'candidates' line");
      ProductAlgorithms::Key key{};
      ProductAlgorithms::Choice choice;
      if (std::string e = parse_product(fields, a.candidates, &key, &choice); !e.empty()) {
        return error(e);
      }
      if (!a.choices.emplace(key, choice).second) return error("the same product twice");
    }
  }
  if (line_number == 0) return cat(name, ": empty file");
  if (!have_device || !have_version || a.candidates == 0) {
    return cat(name, ": the 'device', 'cublaslt' and 'candidates' lines are required");
  }
  *out = std::move(a);
  return "";
}

std::string read_product_algorithms(const std::string& path, ProductAlgorithms* out) {
  std::string text;
  if (std::string e = io::read_whole_file(path, &text); !e.empty()) return e;
  return parse_product_algorithms(text, path, out);
}

std::string write_product_algorithms(const std::string& path, const ProductAlgorithms& a) {
  return io::write_text_atomically(path, format_product_algorithms(a));
}

}  // namespace mx::nn
