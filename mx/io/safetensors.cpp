#include "mx/io/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <utility>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/content_checksum.h"

namespace mx::io {
namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests 3 deep (object, entry, shape). nlohmann's parser is iterative but dump(),
// which quotes a bad value in an error, recurses: thousands of '[' would overflow the stack.
constexpr int kMaxJsonDepth = 16;

// Builds a message piece by piece (long operator+ chains trip GCC 12's -Wrestrict).

struct DTypeBits {
  std::string_view name;
  int bits;
};
constexpr std::array<DTypeBits, 19> kDTypes = {{
    {"BOOL", 8},    {"U8", 8},    {"I8", 8},      {"U16", 16},    {"I16", 16},
    {"F16", 16},    {"BF16", 16}, {"U32", 32},    {"I32", 32},    {"F32", 32},
    {"U64", 64},    {"I64", 64},  {"F64", 64},    {"F8_E4M3", 8}, {"F8_E5M2", 8},
    {"F8_E8M0", 8}, {"F4", 4},    {"F6_E2M3", 6}, {"F6_E3M2", 6},
}};

std::string shape_text(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

// A JSON value as short text for an error message.
std::string short_json(const nlohmann::json& j) {
  std::string s = j.dump();
  if (s.size() > 40) {
    s.resize(40);
    s += "...";
  }
  return s;
}

// The file byte where `text` (which starts at file byte `base`) opens its (kMaxJsonDepth + 1)th
// nested array or object, or -1. Brackets inside strings do not count.
int64_t too_deep_at(std::string_view text, uint64_t base) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return static_cast<int64_t>(base + i);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return -1;
}

// Checks one header entry and fills `t` (bytes left empty) and its data offsets.
std::string parse_entry(const std::string& name, const nlohmann::json& v, SafetensorsTensor* t,
                        uint64_t* begin, uint64_t* end) {
  const std::string where = cat("header (bytes 8..): tensor '", name, "'");
  if (!v.is_object()) return cat(where, " is not a JSON object but ", short_json(v));
  for (const auto& [key, value] : v.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return cat(where, " has unexpected key '", key, "'");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(key)) return cat(where, " lacks '", key, "'");
  }
  const auto& dtype = v["dtype"];
  if (!dtype.is_string()) return cat(where, " has a non-string dtype ", short_json(dtype));
  t->dtype = dtype.get<std::string>();
  if (safetensors_dtype_bits(t->dtype) == 0) {
    return cat(where, " has unknown dtype '", t->dtype, "'");
  }
  const auto& shape = v["shape"];
  if (!shape.is_array()) return cat(where, " has a shape that is not an array");
  t->shape.clear();
  for (const auto& d : shape) {
    if (!d.is_number_integer()) {
      return cat(where, " has a shape entry that is not an integer: ", short_json(d));
    }
    if (d.is_number_unsigned()) {
      const uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return cat(where, " has a dimension too large");
      t->shape.push_back(static_cast<int64_t>(u));
    } else {
      const int64_t s = d.get<int64_t>();
      if (s < 0) return cat(where, " has negative dimension ", s);
      t->shape.push_back(s);
    }
  }
  const auto& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return cat(where,
               " has data_offsets that are not two non-negative integers: ", short_json(offsets));
  }
  *begin = offsets[0].get<uint64_t>();
  *end = offsets[1].get<uint64_t>();
  if (*begin > *end) return cat(where, " has data_offsets begin ", *begin, " > end ", *end);
  std::string err;
  const uint64_t want = safetensors_byte_size(t->dtype, t->shape, &err);
  if (!err.empty()) return cat(where, ": ", err);
  if (want != *end - *begin) {
    return cat(where, " of dtype ", t->dtype, " and shape ", shape_text(t->shape), " needs ", want,
               " bytes but data_offsets [", *begin, ",", *end, "] span ", *end - *begin);
  }
  return "";
}

// Said where the first bytes rule out the format, so that a file of another kind (text, an
// archive) is named as that rather than as a damaged checkpoint.
constexpr std::string_view kNotSafetensors = ": not a safetensors file";

std::string parse_into(std::span<const uint8_t> file, std::vector<SafetensorsTensor>* tensors,
                       std::map<std::string, std::string>* metadata) {
  if (file.size() < 8) {
    return cat("file of ", file.size(), " bytes is too short for the 8-byte header length");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  if (n > kMaxHeaderBytes) {
    return cat("header length ", n, " at byte 0 exceeds the limit of ", kMaxHeaderBytes,
               kNotSafetensors);
  }
  if (n > file.size() - 8) {
    return cat("header length ", n, " at byte 0 runs past the end of the file (", file.size(),
               " bytes, header would end at byte ", n + 8, ")");
  }
  if (n < 2) return cat("header length ", n, " at byte 0 is too small for a JSON object");
  const char* text = reinterpret_cast<const char*>(file.data() + 8);
  if (text[0] != '{') return cat("header at byte 8 does not start with '{'", kNotSafetensors);
  // nlohmann's parser stops at a NUL byte as if the text ended there, so "{...}\0junk" would
  // parse; JSON has no raw NUL anywhere, and the format pads headers with spaces only.
  if (const void* nul = std::memchr(text, 0, n); nul != nullptr) {
    return cat("header has a NUL byte at file byte ", 8 + (static_cast<const char*>(nul) - text));
  }
  if (const int64_t at = too_deep_at(std::string_view(text, n), 8); at >= 0) {
    return cat("header JSON nests deeper than ", kMaxJsonDepth, " levels at file byte ", at);
  }

  // Duplicate top-level keys would silently overwrite each other in the DOM: catch them.
  std::set<std::string> keys;
  std::string duplicate;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (depth == 1 && event == nlohmann::json::parse_event_t::key && duplicate.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys.insert(k).second) duplicate = k;
    }
    return true;
  };
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + n, callback);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 5: syntax error ..."
    const size_t colon = what.find(": ");
    if (colon != std::string::npos) what = what.substr(colon + 2);
    return cat("header JSON is malformed at file byte ",
               8 + (e.byte > 0 ? static_cast<uint64_t>(e.byte) - 1 : 0), ": ", what);
  } catch (const nlohmann::json::exception& e) {
    // Well-formed but unrepresentable, e.g. a number beyond double's range: nlohmann gives no
    // position for these.
    std::string what = e.what();
    const size_t bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    return cat("header JSON (file bytes 8..", 8 + n, ") is invalid: ", what);
  }
  if (!duplicate.empty()) return cat("header (bytes 8..) has duplicate key '", duplicate, "'");
  if (!header.is_object()) return "header (bytes 8..) is not a JSON object";

  struct Placed {
    SafetensorsTensor t;
    uint64_t begin, end;
  };
  std::vector<Placed> placed;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) return "header (bytes 8..): __metadata__ is not a JSON object";
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string()) {
          return cat("header (bytes 8..): __metadata__ value of '", mk, "' is not a string");
        }
        (*metadata)[mk] = mv.get<std::string>();
      }
      continue;
    }
    Placed p;
    p.t.name = key;
    if (auto err = parse_entry(key, value, &p.t, &p.begin, &p.end); !err.empty()) return err;
    placed.push_back(std::move(p));
  }
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = file.size() - data_start;
  std::stable_sort(placed.begin(), placed.end(), [](const Placed& a, const Placed& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  std::string previous;
  for (auto& p : placed) {
    if (p.end > data_size) {
      return cat("tensor '", p.t.name, "' data_offsets [", p.begin, ",", p.end,
                 "] run past the data buffer (", data_size, " bytes from file byte ", data_start,
                 "; would end at file byte ", data_start + p.end, ")");
    }
    if (p.begin < covered) {
      return cat("tensor '", p.t.name, "' at file byte ", data_start + p.begin,
                 " overlaps tensor '", previous, "' which ends at file byte ",
                 data_start + covered);
    }
    if (p.begin > covered) {
      return cat("data buffer has a gap of ", p.begin - covered, " bytes at file byte ",
                 data_start + covered, " before tensor '", p.t.name, "'");
    }
    p.t.bytes = file.subspan(static_cast<size_t>(data_start + p.begin),
                             static_cast<size_t>(p.end - p.begin));
    covered = p.end;
    previous = p.t.name;
  }
  if (covered != data_size) {
    return cat("data buffer has ", data_size - covered, " bytes at file byte ",
               data_start + covered, " that no tensor uses");
  }
  tensors->reserve(placed.size());
  for (auto& p : placed) tensors->push_back(std::move(p.t));
  return "";
}

// The 8-byte length and the padded JSON header.
std::string encode_header(std::span<const TensorToWrite> tensors,
                          const std::map<std::string, std::string>& metadata,
                          std::vector<uint8_t>* out) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  std::set<std::string_view> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name.empty()) return "tensor with an empty name";
    if (t.name == "__metadata__") return "tensor may not be called __metadata__";
    if (!names.insert(t.name).second) return cat("duplicate tensor name '", t.name, "'");
    std::string err;
    const uint64_t want = safetensors_byte_size(t.dtype, t.shape, &err);
    if (!err.empty()) return cat("tensor '", t.name, "': ", err);
    if (want != t.bytes.size()) {
      return cat("tensor '", t.name, "' of dtype ", t.dtype, " and shape ", shape_text(t.shape),
                 " needs ", want, " bytes but has ", t.bytes.size());
    }
    nlohmann::ordered_json e = nlohmann::ordered_json::object();
    e["dtype"] = t.dtype;
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + want};
    header[t.name] = std::move(e);
    offset += want;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return cat("cannot encode the header: ", e.what());  // e.g. invalid UTF-8 in a name
  }
  while (text.size() % 8 != 0) text += ' ';
  if (text.size() > kMaxHeaderBytes) {
    return cat("header of ", text.size(), " bytes exceeds the limit of ", kMaxHeaderBytes);
  }
  out->assign(8 + text.size(), 0);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) (*out)[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(out->data() + 8, text.data(), text.size());
  return "";
}

}  // namespace

int safetensors_dtype_bits(std::string_view dtype) {
  for (const auto& d : kDTypes) {
    if (d.name == dtype) return d.bits;
  }
  return 0;
}

std::optional<DType> safetensors_float_dtype(std::string_view dtype) {
  if (dtype == "F32") return DType::kF32;
  if (dtype == "BF16") return DType::kBF16;
  if (dtype == "F16") return DType::kF16;
  return std::nullopt;
}

uint64_t safetensors_byte_size(std::string_view dtype, std::span<const int64_t> shape,
                               std::string* error) {
  error->clear();
  const int bits = safetensors_dtype_bits(dtype);
  if (bits == 0) {
    *error = cat("unknown dtype '", dtype, "'");
    return 0;
  }
  uint64_t count = 1;
  for (const int64_t d : shape) {
    if (d < 0) {
      *error = cat("negative dimension ", d, " in shape ", shape_text(shape));
      return 0;
    }
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count)) {
      *error = cat("shape ", shape_text(shape), " has too many elements (overflow)");
      return 0;
    }
  }
  uint64_t total_bits = 0;
  if (__builtin_mul_overflow(count, static_cast<uint64_t>(bits), &total_bits)) {
    *error = cat("shape ", shape_text(shape), " of dtype ", dtype, " overflows a byte count");
    return 0;
  }
  if (total_bits % 8 != 0) {
    *error = cat("shape ", shape_text(shape), " of ", bits, "-bit dtype ", dtype,
                 " does not fill whole bytes");
    return 0;
  }
  return total_bits / 8;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  const auto it =
      std::lower_bound(by_name_.begin(), by_name_.end(), name,
                       [&](size_t i, std::string_view n) { return tensors_[i].name < n; });
  return it != by_name_.end() && tensors_[*it].name == name ? &tensors_[*it] : nullptr;
}

void SafetensorsFile::index_names() {
  by_name_.resize(tensors_.size());
  for (size_t i = 0; i < by_name_.size(); ++i) by_name_[i] = i;
  std::sort(by_name_.begin(), by_name_.end(),
            [&](size_t a, size_t b) { return tensors_[a].name < tensors_[b].name; });
}

std::string open_safetensors(const std::string& path, SafetensorsFile* out) {
  out->tensors_.clear();
  out->metadata_.clear();
  out->mapping_.close();
  if (auto err = out->mapping_.open(path); !err.empty()) return err;
  std::string err = parse_into(out->mapping_.bytes(), &out->tensors_, &out->metadata_);
  if (!err.empty()) {
    out->tensors_.clear();
    out->metadata_.clear();
    out->mapping_.close();
    return one_line(cat(path, ": ", err));
  }
  out->index_names();
  if (err = verify_checksum(*out); !err.empty()) {
    out->tensors_.clear();
    out->by_name_.clear();
    out->metadata_.clear();
    out->mapping_.close();
    return cat(path, ": ", err);
  }
  return "";
}

std::string parse_safetensors(std::span<const uint8_t> file, SafetensorsFile* out) {
  out->tensors_.clear();
  out->metadata_.clear();
  out->mapping_.close();
  std::string err = parse_into(file, &out->tensors_, &out->metadata_);
  if (!err.empty()) {
    out->tensors_.clear();
    out->metadata_.clear();
  }
  out->index_names();
  if (err.empty()) err = verify_checksum(*out);
  if (!err.empty()) {
    out->tensors_.clear();
    out->by_name_.clear();
    out->metadata_.clear();
  }
  return one_line(err);
}

std::string encode_safetensors(std::span<const TensorToWrite> tensors,
                               const std::map<std::string, std::string>& metadata,
                               std::vector<uint8_t>* out) {
  out->clear();
  if (auto err = encode_header(tensors, metadata, out); !err.empty()) {
    out->clear();
    return err;
  }
  for (const auto& t : tensors) out->insert(out->end(), t.bytes.begin(), t.bytes.end());
  return "";
}

std::string write_safetensors(const std::string& path, std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<uint8_t> header;
  if (auto err = encode_header(tensors, metadata, &header); !err.empty()) return err;
  std::vector<std::span<const uint8_t>> parts;
  parts.reserve(tensors.size() + 1);
  parts.emplace_back(header);
  for (const auto& t : tensors) parts.push_back(t.bytes);
  return write_file_atomically(path, parts);
}

}  // namespace mx::io
