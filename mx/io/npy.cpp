#include "mx/io/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"

namespace mx::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr size_t kAlign = 64;

// ---- The header: a Python literal, parsed by a small recursive-descent reader. ----

struct PyValue {
  enum Kind { kString, kInt, kName, kTuple, kList, kDict } kind = kName;
  std::string text;            // string contents, integer digits (with sign) or name
  std::vector<PyValue> items;  // tuple/list elements; dict keys and values alternate
};

class LiteralParser {
 public:
  explicit LiteralParser(std::string_view s) : s_(s) {}

  // The whole text must be one value followed only by whitespace.
  std::string parse(PyValue* out) {
    if (std::string e = value(out, 0); !e.empty()) return e;
    skip_space();
    if (pos_ != s_.size()) return fail("unexpected text after the dict");
    return "";
  }

 private:
  // Nesting deeper than any real descr means a hostile or broken file; stop before the stack does.
  static constexpr int kMaxDepth = 32;

  std::string fail(const std::string& what) const {
    return "malformed header dict: " + what + " at byte " + std::to_string(pos_);
  }
  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_name_char(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  }

  std::string value(PyValue* out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    skip_space();
    if (pos_ == s_.size()) return fail("unexpected end");
    const char c = s_[pos_];
    if (c == '\'' || c == '"') return string(out);
    if (c == '(') return sequence(out, ')', PyValue::kTuple, depth);
    if (c == '[') return sequence(out, ']', PyValue::kList, depth);
    if (c == '{') return dict(out, depth);
    if (c == '-' || c == '+' || is_digit(c)) return integer(out);
    if (is_name_char(c)) {
      out->kind = PyValue::kName;
      const size_t start = pos_;
      while (pos_ < s_.size() && is_name_char(s_[pos_])) ++pos_;
      out->text = std::string(s_.substr(start, pos_ - start));
      return "";
    }
    return fail(std::string("unexpected character '") + c + "'");
  }

  std::string string(PyValue* out) {
    const char quote = s_[pos_++];
    out->kind = PyValue::kString;
    out->text.clear();
    while (pos_ < s_.size() && s_[pos_] != quote) {
      // A backslash keeps the next character; no descr NumPy writes needs real unescaping.
      if (s_[pos_] == '\\' && pos_ + 1 < s_.size()) ++pos_;
      out->text += s_[pos_++];
    }
    if (pos_ == s_.size()) return fail("unterminated string");
    ++pos_;
    return "";
  }

  std::string integer(PyValue* out) {
    const size_t start = pos_;
    if (s_[pos_] == '-' || s_[pos_] == '+') ++pos_;
    if (pos_ == s_.size() || !is_digit(s_[pos_])) return fail("bad number");
    while (pos_ < s_.size() && is_digit(s_[pos_])) ++pos_;
    out->kind = PyValue::kInt;
    out->text = std::string(s_.substr(start, pos_ - start));
    return "";
  }

  // "(x)" is x itself in Python, not a tuple; "(x,)" and "()" are tuples.
  std::string sequence(PyValue* out, char close, PyValue::Kind kind, int depth) {
    ++pos_;
    out->kind = kind;
    out->items.clear();
    bool trailing_comma = false;
    while (!eat(close)) {
      if (!out->items.empty() && !trailing_comma) return fail("expected ',' or closing bracket");
      out->items.emplace_back();
      if (std::string e = value(&out->items.back(), depth + 1); !e.empty()) return e;
      trailing_comma = eat(',');
    }
    if (kind == PyValue::kTuple && out->items.size() == 1 && !trailing_comma) {
      PyValue inner = std::move(out->items[0]);
      *out = std::move(inner);
    }
    return "";
  }

  std::string dict(PyValue* out, int depth) {
    ++pos_;
    out->kind = PyValue::kDict;
    out->items.clear();
    bool trailing_comma = false;
    while (!eat('}')) {
      if (!out->items.empty() && !trailing_comma) return fail("expected ',' or '}'");
      out->items.emplace_back();
      if (std::string e = value(&out->items.back(), depth + 1); !e.empty()) return e;
      if (!eat(':')) return fail("expected ':'");
      out->items.emplace_back();
      if (std::string e = value(&out->items.back(), depth + 1); !e.empty()) return e;
      trailing_comma = eat(',');
    }
    return "";
  }

  std::string_view s_;
  size_t pos_ = 0;
};

std::string parse_descr(const PyValue& v, NpyDType* out) {
  if (v.kind == PyValue::kList) return "unsupported dtype: structured array (descr is a list)";
  if (v.kind != PyValue::kString) return "malformed header dict: 'descr' is not a string";
  const std::string& d = v.text;
  if (d == "<f4") {
    *out = NpyDType::kFloat32;
  } else if (d == "<f2") {
    *out = NpyDType::kFloat16;
  } else if (d == "<V2" || d == "bfloat16") {
    *out = NpyDType::kBFloat16;
  } else if (d == "|u1" || d == "<u1") {
    *out = NpyDType::kUInt8;
  } else if (!d.empty() && d[0] == '>') {
    return "unsupported dtype '" + d + "' (big-endian)";
  } else {
    return "unsupported dtype '" + d + "' (supported: <f4, <f2, <V2 or bfloat16, |u1)";
  }
  return "";
}

std::string parse_shape(const PyValue& v, std::vector<int64_t>* shape) {
  if (v.kind != PyValue::kTuple) return "malformed header dict: 'shape' is not a tuple";
  shape->clear();
  for (const PyValue& item : v.items) {
    if (item.kind != PyValue::kInt) return "malformed header dict: 'shape' holds a non-integer";
    std::string_view digits = item.text;
    if (digits[0] == '-') return "negative dimension " + item.text + " in shape";
    if (digits[0] == '+') digits.remove_prefix(1);
    int64_t d = 0;
    for (char c : digits) {
      if (d > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) {
        return "shape dimension " + item.text + " is too large";
      }
      d = d * 10 + (c - '0');
    }
    shape->push_back(d);
  }
  return "";
}

std::string parse_header(std::string_view text, NpyArray* out) {
  PyValue dict;
  if (std::string e = LiteralParser(text).parse(&dict); !e.empty()) return e;
  if (dict.kind != PyValue::kDict) return "malformed header dict: the header is not a dict";
  const PyValue* found[3] = {nullptr, nullptr, nullptr};
  constexpr std::string_view kKeys[3] = {"descr", "fortran_order", "shape"};
  for (size_t i = 0; i < dict.items.size(); i += 2) {
    const PyValue& key = dict.items[i];
    if (key.kind != PyValue::kString) return "malformed header dict: a key is not a string";
    int k = 0;
    while (k < 3 && key.text != kKeys[k]) ++k;
    if (k == 3) return "malformed header dict: unexpected key '" + key.text + "'";
    if (found[k]) return "malformed header dict: duplicate key '" + key.text + "'";
    found[k] = &dict.items[i + 1];
  }
  for (int k = 0; k < 3; ++k) {
    if (!found[k]) return "malformed header dict: missing key '" + std::string(kKeys[k]) + "'";
  }
  if (std::string e = parse_descr(*found[0], &out->dtype); !e.empty()) return e;
  const PyValue& fortran = *found[1];
  if (fortran.kind != PyValue::kName || (fortran.text != "True" && fortran.text != "False")) {
    return "malformed header dict: 'fortran_order' is not True or False";
  }
  if (fortran.text == "True") return "unsupported fortran_order True (only C-order arrays)";
  return parse_shape(*found[2], &out->shape);
}

std::string shape_text(std::span<const int64_t> shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

// The data size of an array, or -1 for a negative dimension or when the nonzero dimensions'
// product (times the item size) does not fit in 63 bits. NumPy refuses such shapes even when a
// zero dimension makes the array empty, and so do we: code downstream multiplies sub-shapes.
int64_t data_bytes(std::span<const int64_t> shape, int itemsize) {
  int64_t n = itemsize;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) {
      empty = true;
    } else if (n > std::numeric_limits<int64_t>::max() / d) {
      return -1;
    } else {
      n *= d;
    }
  }
  return empty ? 0 : n;
}

// Checks everything but the data bytes themselves; sets the offset where the data starts.
std::string decode_layout(std::span<const uint8_t> file, NpyArray* out, size_t* data_offset) {
  const size_t have = std::min(file.size(), kMagicLen);
  if (file.empty() || std::memcmp(file.data(), kMagic, have) != 0) {
    return "not a .npy file (bad magic)";
  }
  if (file.size() < kMagicLen + 2) {
    return "truncated header: the file ends after " + std::to_string(file.size()) + " bytes";
  }
  const int major = file[6], minor = file[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    return "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor);
  }
  const size_t len_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicLen + 2 + len_bytes;
  if (file.size() < prefix) return "truncated header: the file ends inside the header length";
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= uint64_t{file[8 + i]} << (8 * i);
  if (file.size() - prefix < header_len) {
    return "truncated header: expected " + std::to_string(header_len) + " header bytes, found " +
           std::to_string(file.size() - prefix);
  }
  const std::string_view text(reinterpret_cast<const char*>(file.data() + prefix), header_len);
  if (std::string e = parse_header(text, out); !e.empty()) return e;
  const int64_t expected = data_bytes(out->shape, npy_itemsize(out->dtype));
  if (expected < 0) return "shape " + shape_text(out->shape) + " is too large";
  *data_offset = prefix + header_len;
  const uint64_t found = file.size() - *data_offset;
  if (found < uint64_t(expected)) {
    return "truncated data: expected " + std::to_string(expected) + " bytes, found " +
           std::to_string(found);
  }
  if (found > uint64_t(expected)) {
    return "unexpected trailing bytes: expected " + std::to_string(expected) +
           " bytes of data, found " + std::to_string(found);
  }
  return "";
}

// Everything before the data. Spaces then a newline end the header so that the data starts on a
// 64-byte boundary; version 1.0 unless its 2-byte length cannot hold the header.
std::string encode_header(const NpyArray& array, std::vector<uint8_t>* out) {
  const int64_t expected = data_bytes(array.shape, npy_itemsize(array.dtype));
  if (expected < 0) return "shape " + shape_text(array.shape) + " is negative or too large";
  if (uint64_t(expected) != array.data.size()) {
    return "an array of " + std::string(npy_dtype_name(array.dtype)) + " " +
           shape_text(array.shape) + " needs " + std::to_string(expected) + " bytes, not " +
           std::to_string(array.data.size());
  }
  const std::string dict = "{'descr': '" + std::string(npy_descr(array.dtype)) +
                           "', 'fortran_order': False, 'shape': " + shape_text(array.shape) + ", }";
  int major = 1;
  size_t prefix = kMagicLen + 4;
  size_t header_len = (prefix + dict.size() + 1 + kAlign - 1) / kAlign * kAlign - prefix;
  if (header_len > 0xffff) {
    major = 2;
    prefix = kMagicLen + 6;
    header_len = (prefix + dict.size() + 1 + kAlign - 1) / kAlign * kAlign - prefix;
    if (header_len > 0xffffffffu) return "shape has too many dimensions for a .npy header";
  }
  out->clear();
  out->reserve(prefix + header_len + array.data.size());
  out->insert(out->end(), kMagic, kMagic + kMagicLen);
  out->push_back(uint8_t(major));
  out->push_back(0);
  for (size_t i = kMagicLen + 2; i < prefix; ++i) {
    out->push_back(uint8_t(header_len >> (8 * (i - kMagicLen - 2))));
  }
  out->insert(out->end(), dict.begin(), dict.end());
  out->insert(out->end(), header_len - dict.size() - 1, ' ');
  out->push_back('\n');
  return "";
}

// Reads the whole file. Stops after the first read if the magic is wrong, so that pointing the
// reader at some large unrelated file fails at once; decode_layout then names the problem.
std::string read_file(const std::string& path, std::vector<uint8_t>* bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open " + path + ": " + std::strerror(errno);
  struct stat st {};
  const bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  std::string error;
  size_t filled = 0;
  bytes->resize(size_t{1} << 16);
  for (;;) {
    if (filled == bytes->size()) bytes->resize(bytes->size() * 2);
    const ssize_t n = ::read(fd, bytes->data() + filled, bytes->size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = "cannot read " + path + ": " + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    const bool first = filled == 0;
    filled += size_t(n);
    if (first) {
      if (std::memcmp(bytes->data(), kMagic, std::min(filled, kMagicLen)) != 0) break;
      // One allocation of the right size (plus one byte to see EOF) for regular files.
      if (regular && size_t(st.st_size) >= bytes->size()) bytes->resize(size_t(st.st_size) + 1);
    }
  }
  bytes->resize(filled);
  ::close(fd);
  return error;
}

}  // namespace

int npy_itemsize(NpyDType t) {
  return t == NpyDType::kFloat32 ? 4 : t == NpyDType::kUInt8 ? 1 : 2;
}

std::string_view npy_dtype_name(NpyDType t) {
  switch (t) {
    case NpyDType::kFloat32:
      return "float32";
    case NpyDType::kFloat16:
      return "float16";
    case NpyDType::kBFloat16:
      return "bfloat16";
    case NpyDType::kUInt8:
      return "uint8";
  }
  return "?";
}

std::string_view npy_descr(NpyDType t) {
  switch (t) {
    case NpyDType::kFloat32:
      return "<f4";
    case NpyDType::kFloat16:
      return "<f2";
    case NpyDType::kBFloat16:
      return "<V2";
    case NpyDType::kUInt8:
      return "|u1";
  }
  return "?";
}

std::optional<DType> to_float_dtype(NpyDType t) {
  switch (t) {
    case NpyDType::kFloat32:
      return DType::kF32;
    case NpyDType::kFloat16:
      return DType::kF16;
    case NpyDType::kBFloat16:
      return DType::kBF16;
    case NpyDType::kUInt8:
      break;
  }
  return std::nullopt;
}

NpyDType from_float_dtype(DType t) {
  switch (t) {
    case DType::kF32:
      break;
    case DType::kF16:
      return NpyDType::kFloat16;
    case DType::kBF16:
      return NpyDType::kBFloat16;
  }
  return NpyDType::kFloat32;
}

int64_t NpyArray::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d == 0) return 0;
    n *= d;
  }
  return n;
}

std::string decode_npy(std::span<const uint8_t> file, NpyArray* out) {
  size_t offset = 0;
  if (std::string e = decode_layout(file, out, &offset); !e.empty()) return one_line(e);
  out->data.assign(file.begin() + std::ptrdiff_t(offset), file.end());
  return "";
}

std::string encode_npy(const NpyArray& array, std::vector<uint8_t>* out) {
  if (std::string e = encode_header(array, out); !e.empty()) return e;
  out->insert(out->end(), array.data.begin(), array.data.end());
  return "";
}

std::string read_npy(const std::string& path, NpyArray* out) {
  std::vector<uint8_t> bytes;
  if (std::string e = read_file(path, &bytes); !e.empty()) return e;
  size_t offset = 0;
  if (std::string e = decode_layout(bytes, out, &offset); !e.empty()) {
    return one_line(path + ": " + e);
  }
  // Shift the data down in place rather than copy it: arrays can be most of the memory.
  bytes.erase(bytes.begin(), bytes.begin() + std::ptrdiff_t(offset));
  out->data = std::move(bytes);
  return "";
}

std::string write_npy(const std::string& path, const NpyArray& array) {
  std::vector<uint8_t> header;
  if (std::string e = encode_header(array, &header); !e.empty()) return e;
  const std::span<const uint8_t> parts[] = {header, array.data};
  return write_file_atomically(path, parts);
}

}  // namespace mx::io
