#include "mx/io/gguf_values.h"

#include "mx/io/cat.h"

namespace mx::io {
namespace {

template <typename T>
GgufValue array_of(GgufType type, const std::vector<T>& items) {
  std::vector<GgufValue> values(items.size());
  for (size_t i = 0; i < items.size(); ++i) values[i].v = items[i];
  return GgufValue{GgufArray(type, std::move(values))};
}

const char* type_name(GgufType t) {
  static constexpr const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                           "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

// The KV, or null: "" when it is missing and optional, else why not.
std::string find(const GgufFile& file, std::string_view key, bool required, const GgufValue** out) {
  *out = file.find_kv(key);
  if (*out == nullptr && required) return cat("the KV ", key, " is missing");
  return "";
}

std::string wrong_type(std::string_view key, const GgufValue& v, std::string_view wanted) {
  return cat("the KV ", key, " is of type ", type_name(v.type()), ", not ", wanted);
}

// Calls fn on each element of the array KV `key`, whose elements must satisfy `accepts`.
template <typename Accepts, typename Fn>
std::string read_array(const GgufFile& file, std::string_view key, bool required,
                       std::string_view wanted, Accepts accepts, Fn fn) {
  const GgufValue* v;
  if (std::string e = find(file, key, required, &v); !e.empty() || v == nullptr) return e;
  const GgufArray* a = std::get_if<GgufArray>(&v->v);
  if (a == nullptr || !accepts(a->type())) {
    return cat("the KV ", key, " is not an array of ", wanted);
  }
  return a->for_each([&](const GgufValue& item) {
    fn(item);
    return std::string();
  });
}

}  // namespace

GgufKv gguf_kv(std::string key, GgufValue::Variant value) {
  return GgufKv{std::move(key), GgufValue{std::move(value)}};
}

GgufValue gguf_string_array(const std::vector<std::string>& items) {
  return array_of(GgufType::kString, items);
}

GgufValue gguf_f32_array(const std::vector<float>& items) {
  return array_of(GgufType::kF32, items);
}

GgufValue gguf_i32_array(const std::vector<int32_t>& items) {
  return array_of(GgufType::kI32, items);
}

std::optional<int64_t> gguf_integer(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, uint64_t>) {
          if (x > uint64_t(INT64_MAX)) return std::nullopt;
          return int64_t(x);
        } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          return int64_t(x);
        } else {
          return std::nullopt;
        }
      },
      v.v);
}

std::optional<double> gguf_number(const GgufValue& v) {
  if (const float* f = std::get_if<float>(&v.v)) return double(*f);
  if (const double* d = std::get_if<double>(&v.v)) return *d;
  if (std::optional<int64_t> i = gguf_integer(v)) return double(*i);
  return std::nullopt;
}

std::string read_gguf_string(const GgufFile& file, std::string_view key, bool required,
                             std::string* out) {
  const GgufValue* v;
  if (std::string e = find(file, key, required, &v); !e.empty() || v == nullptr) return e;
  const std::string* s = std::get_if<std::string>(&v->v);
  if (s == nullptr) return wrong_type(key, *v, "string");
  *out = *s;
  return "";
}

std::string read_gguf_integer(const GgufFile& file, std::string_view key, bool required,
                              int64_t* out) {
  const GgufValue* v;
  if (std::string e = find(file, key, required, &v); !e.empty() || v == nullptr) return e;
  const std::optional<int64_t> i = gguf_integer(*v);
  if (!i) return wrong_type(key, *v, "an integer");
  *out = *i;
  return "";
}

std::string read_gguf_number(const GgufFile& file, std::string_view key, bool required,
                             double* out) {
  const GgufValue* v;
  if (std::string e = find(file, key, required, &v); !e.empty() || v == nullptr) return e;
  const std::optional<double> d = gguf_number(*v);
  if (!d) return wrong_type(key, *v, "a number");
  *out = *d;
  return "";
}

std::string read_gguf_bool(const GgufFile& file, std::string_view key, bool required, bool* out) {
  const GgufValue* v;
  if (std::string e = find(file, key, required, &v); !e.empty() || v == nullptr) return e;
  const bool* b = std::get_if<bool>(&v->v);
  if (b == nullptr) return wrong_type(key, *v, "bool");
  *out = *b;
  return "";
}

std::string read_gguf_strings(const GgufFile& file, std::string_view key, bool required,
                              std::vector<std::string>* out) {
  std::vector<std::string> items;
  std::string e = read_array(
      file, key, required, "strings", [](GgufType t) { return t == GgufType::kString; },
      [&](const GgufValue& v) { items.push_back(std::get<std::string>(v.v)); });
  if (e.empty() && file.find_kv(key) != nullptr) *out = std::move(items);
  return e;
}

std::string read_gguf_floats(const GgufFile& file, std::string_view key, bool required,
                             std::vector<float>* out) {
  std::vector<float> items;
  std::string e = read_array(
      file, key, required, "f32", [](GgufType t) { return t == GgufType::kF32; },
      [&](const GgufValue& v) { items.push_back(std::get<float>(v.v)); });
  if (e.empty() && file.find_kv(key) != nullptr) *out = std::move(items);
  return e;
}

std::string read_gguf_integers(const GgufFile& file, std::string_view key, bool required,
                               std::vector<int64_t>* out) {
  std::vector<int64_t> items;
  bool fits = true;
  std::string e = read_array(
      file, key, required, "integers",
      [](GgufType t) { return t <= GgufType::kI32 || t == GgufType::kU64 || t == GgufType::kI64; },
      [&](const GgufValue& v) {
        const std::optional<int64_t> i = gguf_integer(v);
        fits = fits && i.has_value();
        items.push_back(i.value_or(0));
      });
  if (!e.empty()) return e;
  if (!fits) return cat("the KV ", key, " holds an integer beyond int64");
  if (file.find_kv(key) != nullptr) *out = std::move(items);
  return "";
}

}  // namespace mx::io
