#include "mx/io/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <set>
#include <type_traits>

#include "mx/core/layout_ggml.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"

namespace mx::io {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF is read in host order");

constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;       // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 64;  // GGML_MAX_NAME, the terminating zero included

// Encoded size of a scalar GGUF type; 0 for string and array.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::kU8:
    case GgufType::kI8:
    case GgufType::kBool:
      return 1;
    case GgufType::kU16:
    case GgufType::kI16:
      return 2;
    case GgufType::kU32:
    case GgufType::kI32:
    case GgufType::kF32:
      return 4;
    case GgufType::kU64:
    case GgufType::kI64:
    case GgufType::kF64:
      return 8;
    default:
      return 0;
  }
}

}  // namespace

// Builds and reads the private parts of a GgufArray for the reader and the encoder.
class GgufArrayAccess {
 public:
  static GgufArray from_file(GgufType type, uint64_t count, std::span<const uint8_t> encoded) {
    GgufArray a;
    a.type_ = type;
    a.count_ = count;
    a.encoded_.assign(encoded.begin(), encoded.end());
    a.from_file_ = true;
    return a;
  }
  static const std::vector<uint8_t>* encoded(const GgufArray& a) {
    return a.from_file_ ? &a.encoded_ : nullptr;
  }
  static const std::vector<GgufValue>& items(const GgufArray& a) { return a.items_; }
};

namespace {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return b_.size() - pos_; }

  template <class T>
  std::string read(const char* what, T* out) {
    if (left() < sizeof(T)) {
      return cat("truncated at byte ", pos_, ": ", what, " needs ", sizeof(T), " bytes, ", left(),
                 " left");
    }
    std::memcpy(out, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return "";
  }

  std::string read_string(const char* what, std::string* out) {
    const uint64_t at = pos_;
    uint64_t n = 0;
    if (auto e = read(what, &n); !e.empty()) return e;
    if (n > left()) {
      return cat(what, " at byte ", at, " has length ", n, " but only ", left(), " bytes are left");
    }
    out->assign(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
    pos_ += n;
    return "";
  }

  // Checks the array at the current position (its type, count and every element, nested arrays
  // included) without keeping anything, and moves past it; `*begin` is where its elements start.
  std::string skip_array(int depth, GgufType* element, uint64_t* count, uint64_t* begin) {
    const uint64_t at = pos_;
    if (depth >= kMaxArrayDepth) {
      return cat("array at byte ", at, " nests deeper than ", kMaxArrayDepth);
    }
    uint32_t raw = 0;
    if (auto e = read("array element type", &raw); !e.empty()) return e;
    if (raw > static_cast<uint32_t>(GgufType::kF64)) {
      return cat("array at byte ", at, " has unknown element type ", raw);
    }
    *element = static_cast<GgufType>(raw);
    const uint64_t count_at = pos_;
    if (auto e = read("array count", count); !e.empty()) return e;
    // Every element takes at least its scalar size, or 8 bytes (a length or a type+count).
    const uint64_t size = scalar_size(*element);
    if (*count > left() / (size != 0 ? size : 8)) {
      return cat("array count ", *count, " at byte ", count_at, " is absurd: only ", left(),
                 " bytes are left");
    }
    *begin = pos_;
    if (size != 0 && *element != GgufType::kBool) {
      pos_ += *count * size;
      return "";
    }
    for (uint64_t i = 0; i < *count; ++i) {
      if (auto e = skip_value(*element, depth + 1); !e.empty()) return e;
    }
    return "";
  }

  std::string skip_value(GgufType type, int depth) {
    if (type == GgufType::kArray) {
      GgufType element = GgufType::kU8;
      uint64_t n = 0, begin = 0;
      return skip_array(depth, &element, &n, &begin);
    }
    if (type == GgufType::kString) {
      const uint64_t at = pos_;
      uint64_t n = 0;
      if (auto e = read("string length", &n); !e.empty()) return e;
      if (n > left()) {
        return cat("string value at byte ", at, " has length ", n, " but only ", left(),
                   " bytes are left");
      }
      pos_ += n;
      return "";
    }
    GgufValue scratch;  // scalars are small: read them to check them (a bool must be 0 or 1)
    return read_value(type, depth, &scratch);
  }

  std::string read_value(GgufType type, int depth, GgufValue* out) {
    const uint64_t at = pos_;
    switch (type) {
      case GgufType::kU8:
        return scalar<uint8_t>(out);
      case GgufType::kI8:
        return scalar<int8_t>(out);
      case GgufType::kU16:
        return scalar<uint16_t>(out);
      case GgufType::kI16:
        return scalar<int16_t>(out);
      case GgufType::kU32:
        return scalar<uint32_t>(out);
      case GgufType::kI32:
        return scalar<int32_t>(out);
      case GgufType::kF32:
        return scalar<float>(out);
      case GgufType::kU64:
        return scalar<uint64_t>(out);
      case GgufType::kI64:
        return scalar<int64_t>(out);
      case GgufType::kF64:
        return scalar<double>(out);
      case GgufType::kBool: {
        uint8_t b = 0;
        if (auto e = read("bool value", &b); !e.empty()) return e;
        if (b > 1) return cat("bool value at byte ", at, " is ", b, ", not 0 or 1");
        out->v = b == 1;
        return "";
      }
      case GgufType::kString: {
        std::string s;
        if (auto e = read_string("string value", &s); !e.empty()) return e;
        out->v = std::move(s);
        return "";
      }
      case GgufType::kArray: {
        GgufType element = GgufType::kU8;
        uint64_t n = 0, begin = 0;
        if (auto e = skip_array(depth, &element, &n, &begin); !e.empty()) return e;
        out->v = GgufArrayAccess::from_file(element, n, b_.subspan(begin, pos_ - begin));
        return "";
      }
    }
    return cat("unknown value type ", static_cast<uint32_t>(type), " at byte ", at);
  }

 private:
  template <class T>
  std::string scalar(GgufValue* out) {
    T x{};
    if (auto e = read("value", &x); !e.empty()) return e;
    out->v = x;
    return "";
  }

  std::span<const uint8_t> b_;
  uint64_t pos_ = 0;
};

void append_raw(std::vector<uint8_t>* out, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  out->insert(out->end(), b, b + n);
}
template <class T>
void append(std::vector<uint8_t>* out, T x) {
  append_raw(out, &x, sizeof x);
}
void append_string(std::vector<uint8_t>* out, const std::string& s) {
  append<uint64_t>(out, s.size());
  append_raw(out, s.data(), s.size());
}

std::string encode_value(const GgufValue& v, int depth, std::vector<uint8_t>* out) {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, bool>) {
          append<uint8_t>(out, x ? 1 : 0);
        } else if constexpr (std::is_same_v<T, std::string>) {
          append_string(out, x);
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          if (depth >= kMaxArrayDepth) return cat("array nests deeper than ", kMaxArrayDepth);
          append<uint32_t>(out, static_cast<uint32_t>(x.type()));
          append<uint64_t>(out, x.size());
          if (const std::vector<uint8_t>* bytes = GgufArrayAccess::encoded(x)) {
            append_raw(out, bytes->data(), bytes->size());
            return "";
          }
          for (const auto& item : GgufArrayAccess::items(x)) {
            if (item.type() != x.type()) {
              return cat("array of type ", static_cast<uint32_t>(x.type()),
                         " holds a value of type ", static_cast<uint32_t>(item.type()));
            }
            if (auto e = encode_value(item, depth + 1, out); !e.empty()) return e;
          }
        } else {
          append<T>(out, x);
        }
        return "";
      },
      v.v);
}

uint64_t align_up(uint64_t x, uint64_t a) {
  return (x + a - 1) / a * a;
}

// Byte size of a tensor, or a reason.
std::string tensor_bytes(uint32_t type, std::span<const int64_t> dims, uint64_t* bytes) {
  const auto [block_elems, block_bytes] = ggml_type_block(type);
  if (block_elems == 0) return cat("unsupported ggml type ", type);
  uint64_t n = 1;
  for (const int64_t d : dims) {
    if (d <= 0) return cat("dimension ", d, " is not positive");
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
      return "element count overflows";
    }
  }
  if (dims.empty() || dims[0] % block_elems != 0) {
    return cat("first dimension is not a multiple of the type's block of ", block_elems);
  }
  if (__builtin_mul_overflow(n / static_cast<uint64_t>(block_elems),
                             static_cast<uint64_t>(block_bytes), bytes)) {
    return "byte count overflows";
  }
  return "";
}

std::string parse_into(std::span<const uint8_t> file, uint32_t* version, uint32_t* alignment,
                       uint64_t* data_offset, std::vector<GgufKv>* kvs,
                       std::vector<GgufTensor>* tensors) {
  Reader r(file);
  if (file.size() < 4 || std::memcmp(file.data(), "GGUF", 4) != 0) {
    return "bad magic at byte 0: not a GGUF file";
  }
  uint32_t magic = 0;
  (void)r.read("magic", &magic);
  if (auto e = r.read("version", version); !e.empty()) return e;
  if (*version != 2 && *version != 3) {
    if (__builtin_bswap32(*version) == 2 || __builtin_bswap32(*version) == 3) {
      return cat("version at byte 4 reads ", *version, ": a big-endian GGUF, not supported");
    }
    return cat("unsupported GGUF version ", *version, " at byte 4 (supported: 2, 3)");
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (auto e = r.read("tensor count", &n_tensors); !e.empty()) return e;
  if (auto e = r.read("kv count", &n_kv); !e.empty()) return e;
  // A KV takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 4 + 8.
  if (n_kv > r.left() / 13) {
    return cat("kv count ", n_kv, " at byte 16 is absurd for a file of ", file.size(), " bytes");
  }
  if (n_tensors > r.left() / 24) {
    return cat("tensor count ", n_tensors, " at byte 8 is absurd for a file of ", file.size(),
               " bytes");
  }
  std::set<std::string> keys;
  *alignment = 32;
  for (uint64_t i = 0; i < n_kv; ++i) {
    const uint64_t at = r.pos();
    GgufKv kv;
    if (auto e = r.read_string("kv key", &kv.key); !e.empty()) return e;
    if (!keys.insert(kv.key).second) return cat("duplicate key '", kv.key, "' at byte ", at);
    uint32_t raw = 0;
    const uint64_t type_at = r.pos();
    if (auto e = r.read("kv value type", &raw); !e.empty()) return e;
    if (raw > static_cast<uint32_t>(GgufType::kF64)) {
      return cat("key '", kv.key, "' has unknown value type ", raw, " at byte ", type_at);
    }
    if (auto e = r.read_value(static_cast<GgufType>(raw), 0, &kv.value); !e.empty()) {
      return cat("key '", kv.key, "': ", e);
    }
    if (kv.key == "general.alignment") {
      const auto* a = std::get_if<uint32_t>(&kv.value.v);
      if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0) {
        return cat("general.alignment at byte ", at, " is not a u32 power of two");
      }
      *alignment = *a;
    }
    kvs->push_back(std::move(kv));
  }
  std::set<std::string> names;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    const uint64_t at = r.pos();
    GgufTensor t;
    if (auto e = r.read_string("tensor name", &t.name); !e.empty()) return e;
    if (!names.insert(t.name).second) {
      return cat("duplicate tensor name '", t.name, "' at byte ", at);
    }
    uint32_t n_dims = 0;
    const uint64_t dims_at = r.pos();
    if (auto e = r.read("tensor n_dims", &n_dims); !e.empty()) return e;
    if (n_dims == 0 || n_dims > kMaxDims) {
      return cat("tensor '", t.name, "' has ", n_dims, " dimensions at byte ", dims_at,
                 " (1 to 4 allowed)");
    }
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      if (auto e = r.read("tensor dimension", &dim); !e.empty()) return e;
      if (dim == 0 || dim > static_cast<uint64_t>(INT64_MAX)) {
        return cat("tensor '", t.name, "' has dimension ", dim, " at byte ", r.pos() - 8);
      }
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t type_at = r.pos();
    if (auto e = r.read("tensor type", &t.type); !e.empty()) return e;
    if (auto e = r.read("tensor offset", &t.offset); !e.empty()) return e;
    uint64_t bytes = 0;
    if (auto e = tensor_bytes(t.type, t.dims, &bytes); !e.empty()) {
      return cat("tensor '", t.name, "' (info at byte ", at, ", type at byte ", type_at, "): ", e);
    }
    if (t.offset % *alignment != 0) {
      return cat("tensor '", t.name, "' offset ", t.offset, " at byte ", r.pos() - 8,
                 " is not a multiple of the alignment ", *alignment);
    }
    tensors->push_back(std::move(t));
  }
  *data_offset = align_up(r.pos(), *alignment);
  if (*data_offset > file.size()) {
    return cat("file of ", file.size(), " bytes ends before the data section at byte ",
               *data_offset);
  }
  const uint64_t data_size = file.size() - *data_offset;
  // Bounds and overlaps, in offset order.
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i = 0; i < tensors->size(); ++i) order.push_back({(*tensors)[i].offset, i});
  std::sort(order.begin(), order.end());
  uint64_t covered = 0;
  std::string previous;
  for (const auto& [offset, i] : order) {
    GgufTensor& t = (*tensors)[i];
    uint64_t bytes = 0;
    (void)tensor_bytes(t.type, t.dims, &bytes);
    if (offset > data_size || bytes > data_size - offset) {
      return cat("tensor '", t.name, "' data [", offset, ",", offset + bytes,
                 ") runs past the data section (", data_size, " bytes from file byte ",
                 *data_offset, ")");
    }
    if (offset < covered) {
      return cat("tensor '", t.name, "' data at file byte ", *data_offset + offset,
                 " overlaps tensor '", previous, "' which ends at file byte ",
                 *data_offset + covered);
    }
    t.bytes = file.subspan(static_cast<size_t>(*data_offset + offset), static_cast<size_t>(bytes));
    covered = offset + bytes;
    previous = t.name;
  }
  return "";
}

}  // namespace

std::pair<int64_t, int64_t> ggml_type_block(uint32_t type) {
  switch (type) {
    case 0:  // F32
      return {1, 4};
    case 1:  // F16
      return {1, 2};
    case 2:  // Q4_0
      return {32, 18};
    case 3:  // Q4_1
      return {32, 20};
    case 6:  // Q5_0
      return {32, 22};
    case 7:  // Q5_1
      return {32, 24};
    case 8:  // Q8_0
      return {32, 34};
    case 9:  // Q8_1
      return {32, 36};
    case 10:  // Q2_K
      return {256, 84};
    case 11:  // Q3_K
      return {256, 110};
    case 12:  // Q4_K
      return {256, 144};
    case 13:  // Q5_K
      return {256, 176};
    case 14:  // Q6_K
      return {256, 210};
    case 15:  // Q8_K
      return {256, 292};
    case 24:  // I8
      return {1, 1};
    case 25:  // I16
      return {1, 2};
    case 26:  // I32
      return {1, 4};
    case 27:  // I64
      return {1, 8};
    case 28:  // F64
      return {1, 8};
    case 30:  // BF16
      return {1, 2};
    case 39:  // MXFP4
      return {32, 17};
    default:
      return {0, 0};
  }
}

GgufArray::GgufArray(GgufType type, std::vector<GgufValue> items)
    : type_(type), count_(items.size()), items_(std::move(items)) {}

std::string GgufArray::for_each(const std::function<std::string(const GgufValue&)>& fn) const {
  if (!from_file_) {
    for (const GgufValue& v : items_) {
      if (std::string e = fn(v); !e.empty()) return e;
    }
    return "";
  }
  // The bytes were checked when the file was read, so decoding them cannot fail.
  Reader r(encoded_);
  for (uint64_t i = 0; i < count_; ++i) {
    GgufValue v;
    if (std::string e = r.read_value(type_, 0, &v); !e.empty()) return e;
    if (std::string e = fn(v); !e.empty()) return e;
  }
  return "";
}

std::vector<GgufValue> GgufArray::first(uint64_t n) const {
  std::vector<GgufValue> out;
  (void)for_each([&](const GgufValue& v) {
    if (out.size() >= n) return std::string("enough");
    out.push_back(v);
    return std::string();
  });
  return out;
}

const GgufValue* GgufFile::find_kv(std::string_view key) const {
  for (const auto& kv : kvs_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string parse_gguf(std::span<const uint8_t> file, GgufFile* out) {
  out->mapping_.close();
  out->kvs_.clear();
  out->tensors_.clear();
  std::string e = parse_into(file, &out->version_, &out->alignment_, &out->data_offset_, &out->kvs_,
                             &out->tensors_);
  if (!e.empty()) {
    out->kvs_.clear();
    out->tensors_.clear();
  }
  return one_line(e);
}

std::string open_gguf(const std::string& path, GgufFile* out) {
  MappedFile map;
  if (auto e = map.open(path); !e.empty()) return e;
  if (auto e = parse_gguf(map.bytes(), out); !e.empty()) return one_line(cat(path, ": ", e));
  out->mapping_ = std::move(map);  // the spans stay valid: the mapping itself does not move
  return "";
}

std::string encode_gguf(std::span<const GgufKv> kvs, std::span<const GgufTensorToWrite> tensors,
                        std::vector<uint8_t>* out) {
  out->clear();
  uint32_t alignment = 32;
  std::set<std::string_view> keys;
  for (const auto& kv : kvs) {
    if (kv.key.empty()) return "a metadata key is empty";
    if (!keys.insert(kv.key).second) return cat("duplicate key '", kv.key, "'");
    if (kv.key == "general.alignment") {
      const auto* a = std::get_if<uint32_t>(&kv.value.v);
      if (a == nullptr || *a == 0 || (*a & (*a - 1)) != 0) {
        return "general.alignment is not a u32 power of two";
      }
      alignment = *a;
    }
  }
  std::vector<uint8_t> b;
  append_raw(&b, "GGUF", 4);
  append<uint32_t>(&b, 3);
  append<uint64_t>(&b, tensors.size());
  append<uint64_t>(&b, kvs.size());
  for (const auto& kv : kvs) {
    append_string(&b, kv.key);
    append<uint32_t>(&b, static_cast<uint32_t>(kv.value.type()));
    if (auto e = encode_value(kv.value, 0, &b); !e.empty()) return cat("key '", kv.key, "': ", e);
  }
  std::set<std::string_view> names;
  std::vector<uint64_t> offsets;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (!names.insert(t.name).second) return cat("duplicate tensor name '", t.name, "'");
    // ggml stores names in 64-byte buffers with a terminating zero.
    if (t.name.empty() || t.name.size() >= kMaxTensorName) {
      return cat("tensor name '", t.name, "' must have 1 to ", kMaxTensorName - 1, " bytes");
    }
    if (t.dims.empty() || t.dims.size() > kMaxDims) {
      return cat("tensor '", t.name, "' has ", t.dims.size(), " dimensions (1 to 4 allowed)");
    }
    uint64_t bytes = 0;
    if (auto e = tensor_bytes(t.type, t.dims, &bytes); !e.empty()) {
      return cat("tensor '", t.name, "': ", e);
    }
    if (bytes != t.bytes.size()) {
      return cat("tensor '", t.name, "' needs ", bytes, " bytes but has ", t.bytes.size());
    }
    append_string(&b, t.name);
    append<uint32_t>(&b, static_cast<uint32_t>(t.dims.size()));
    for (const int64_t d : t.dims) append<uint64_t>(&b, static_cast<uint64_t>(d));
    append<uint32_t>(&b, t.type);
    append<uint64_t>(&b, offset);
    offsets.push_back(offset);
    offset = align_up(offset + bytes, alignment);
  }
  b.resize(align_up(b.size(), alignment), 0);
  const size_t data_start = b.size();
  b.resize(data_start + offset, 0);
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!tensors[i].bytes.empty()) {
      std::memcpy(b.data() + data_start + offsets[i], tensors[i].bytes.data(),
                  tensors[i].bytes.size());
    }
  }
  *out = std::move(b);
  return "";
}

std::string write_gguf(const std::string& path, std::span<const GgufKv> kvs,
                       std::span<const GgufTensorToWrite> tensors) {
  std::vector<uint8_t> bytes;
  if (auto e = encode_gguf(kvs, tensors, &bytes); !e.empty()) return e;
  return write_file_atomically(path, std::span<const uint8_t>(bytes));
}

std::string gguf_mxfp4_tensor(const std::string& name, const MxTensor& t,
                              std::vector<uint8_t>* storage, GgufTensorToWrite* out) {
  std::string err;
  *storage = to_ggml_mxfp4_bytes(t, &err);
  if (!err.empty()) return cat("tensor '", name, "': ", err);
  out->name = name;
  out->dims.assign(t.shape.rbegin(), t.shape.rend());
  out->type = kGgmlMxfp4;
  out->bytes = *storage;
  return "";
}

std::string load_gguf_mxfp4(const GgufTensor& t, MxTensor* out) {
  if (t.type != kGgmlMxfp4) {
    return one_line(cat("tensor '", t.name, "' has ggml type ", t.type, ", not MXFP4 (39)"));
  }
  std::string err;
  const std::vector<int64_t> shape = t.shape();
  MxTensor m = from_ggml_mxfp4_bytes(t.bytes, shape, &err);
  if (!err.empty()) return one_line(cat("tensor '", t.name, "': ", err));
  *out = std::move(m);
  return "";
}

}  // namespace mx::io
