#include "mx/convert/inspect_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "mx/convert/dtypes.h"
#include "mx/core/block_grid.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/io/cat.h"
#include "mx/io/gguf.h"
#include "mx/io/llama2c.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"

namespace mx::convert {
namespace {

using io::cat;

bool is_float_safetensors_dtype(const std::string& d) {
  return d == "F64" || d == "F32" || d == "F16" || d == "BF16" || d.starts_with("F8_") ||
         d.starts_with("F6_") || d == "F4";
}

// Long arrays (a tokenizer's vocabulary) are summarised rather than printed.
std::string gguf_value_text(const io::GgufValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, io::GgufArray>) {
          if (v.size() > 8) return cat("array of ", v.size(), " items");
          std::string s = "[";
          for (const io::GgufValue& item : v.first(8)) {
            if (s.size() > 1) s += ", ";
            s += gguf_value_text(item);
          }
          return s + "]";
        } else if constexpr (std::is_floating_point_v<T>) {
          return nlohmann::json(v).dump();
        } else {
          return std::to_string(v);
        }
      },
      value.v);
}

std::string from_safetensors(const std::string& path, Inspection* out) {
  io::SafetensorsFile file;
  if (std::string e = io::open_safetensors(path, &file); !e.empty()) return e;
  std::map<std::string, InspectedTensor> mx;
  std::map<std::string, std::string> owner;  // component name -> MX tensor name
  for (const auto& [key, value] : file.metadata()) {
    if (!key.starts_with("mx.")) {
      out->metadata.emplace_back(key, value);
      continue;
    }
    const std::string name = key.substr(3);
    MxTensor t;  // loaded to check it; only one is held at a time
    if (std::string e = io::load_mx_tensor(file, name, &t); !e.empty()) return cat(path, ": ", e);
    InspectedTensor& m = mx[name];
    m.name = name;
    m.dtype = traits(t.spec.format).mx_name;
    m.shape = t.shape;
    m.is_float = true;
    m.spec = t.spec;
    m.spec_text = describe(t.spec);
    for (const std::string& part : io::mx_component_names(name, t)) owner[part] = name;
  }
  for (const io::SafetensorsTensor& t : file.tensors()) {
    if (auto it = owner.find(t.name); it != owner.end()) mx.at(it->second).bytes += t.bytes.size();
  }
  std::set<std::string> listed;
  for (const io::SafetensorsTensor& t : file.tensors()) {
    auto it = owner.find(t.name);
    if (it == owner.end()) {
      out->tensors.push_back({t.name, t.dtype, t.shape, t.bytes.size(),
                              is_float_safetensors_dtype(t.dtype), std::nullopt, ""});
    } else if (listed.insert(it->second).second) {
      out->tensors.push_back(mx.at(it->second));  // where its first part is
    }
  }
  return "";
}

std::string from_gguf(const std::string& path, Inspection* out) {
  io::GgufFile file;
  if (std::string e = io::open_gguf(path, &file); !e.empty()) return e;
  for (const io::GgufKv& kv : file.kvs()) {
    out->metadata.emplace_back(kv.key, gguf_value_text(kv.value));
  }
  for (const io::GgufTensor& t : file.tensors()) {
    InspectedTensor x;
    x.name = t.name;
    x.dtype = ggml_type_name(t.type);
    x.shape = t.shape();
    x.bytes = t.bytes.size();
    const std::string_view plain = safetensors_dtype_of(t.type);
    x.is_float = plain.empty() || is_float_safetensors_dtype(std::string(plain));
    if (t.type == io::kGgmlMxfp4) {
      x.spec = mxfp4_rowwise_spec();
      x.spec_text = "mxfp4_e2m1 block=32 axis=-1 (ggml MXFP4)";
    }
    out->tensors.push_back(std::move(x));
  }
  return "";
}

std::string from_llama2c(const std::string& path, Inspection* out) {
  io::Llama2cCheckpoint ckpt;
  if (std::string e = io::read_llama2c(path, &ckpt); !e.empty()) return e;
  const io::Llama2cConfig& c = ckpt.config();
  const std::pair<const char*, int64_t> config[] = {
      {"dim", c.dim},         {"hidden_dim", c.hidden_dim}, {"n_layers", c.n_layers},
      {"n_heads", c.n_heads}, {"n_kv_heads", c.n_kv_heads}, {"vocab_size", c.vocab_size},
      {"seq_len", c.seq_len},
  };
  for (const auto& [key, value] : config) out->metadata.emplace_back(key, std::to_string(value));
  out->metadata.emplace_back("shared_classifier", c.shared_classifier ? "true" : "false");
  for (const io::Llama2cTensor& t : ckpt.tensors()) {
    out->tensors.push_back({t.name, "F32", t.shape, t.data.size_bytes(), true, std::nullopt, ""});
  }
  return "";
}

nlohmann::ordered_json ratio_json(std::optional<double> r) {
  return r ? nlohmann::ordered_json(*r) : nlohmann::ordered_json(nullptr);
}

}  // namespace

uint64_t InspectedTensor::bf16_bytes() const {
  return is_float ? 2 * static_cast<uint64_t>(element_count(shape)) : bytes;
}

std::optional<double> InspectedTensor::ratio() const {
  if (!is_float || bytes == 0) return std::nullopt;
  return double(bf16_bytes()) / double(bytes);
}

uint64_t Inspection::bytes() const {
  uint64_t n = 0;
  for (const InspectedTensor& t : tensors) n += t.bytes;
  return n;
}

uint64_t Inspection::bf16_bytes() const {
  uint64_t n = 0;
  for (const InspectedTensor& t : tensors) n += t.bf16_bytes();
  return n;
}

std::optional<double> Inspection::ratio() const {
  if (bytes() == 0) return std::nullopt;
  return double(bf16_bytes()) / double(bytes());
}

int64_t Inspection::mx_count() const {
  int64_t n = 0;
  for (const InspectedTensor& t : tensors) n += t.spec ? 1 : 0;
  return n;
}

int64_t Inspection::parameters() const {
  int64_t n = 0;
  for (const InspectedTensor& t : tensors) n += t.is_float ? element_count(t.shape) : 0;
  return n;
}

std::string inspect_checkpoint(const std::string& path, Inspection* out) {
  Inspection r;
  r.path = path;
  r.container = io::guess_container(path);
  std::string e;
  switch (r.container) {
    case Container::kSafetensors:
      e = from_safetensors(path, &r);
      break;
    case Container::kGguf:
      e = from_gguf(path, &r);
      break;
    case Container::kLlama2c:
      e = from_llama2c(path, &r);
      break;
  }
  if (!e.empty()) return e;
  std::error_code ec;
  r.file_bytes = std::filesystem::file_size(path, ec);
  *out = std::move(r);
  return "";
}

std::string inspection_json(const Inspection& in) {
  using json = nlohmann::ordered_json;
  json j;
  j["file"] = in.path;
  j["container"] = io::container_name(in.container);
  j["file_bytes"] = in.file_bytes;
  json metadata = json::object();
  for (const auto& [key, value] : in.metadata) metadata[key] = value;
  j["metadata"] = metadata;
  json tensors = json::array();
  for (const InspectedTensor& t : in.tensors) {
    json x;
    x["name"] = t.name;
    x["dtype"] = t.dtype;
    x["shape"] = t.shape;
    x["bytes"] = t.bytes;
    x["bf16_bytes"] = t.bf16_bytes();
    x["ratio"] = ratio_json(t.ratio());
    if (t.spec) {
      json spec;
      if (in.container == Container::kGguf) {
        // ggml records neither the scale rule nor the rounding that made the bytes.
        spec["format"] = traits(t.spec->format).mx_name;
        spec["block"] = t.spec->block_size;
        spec["axis"] = t.spec->axis;
      } else {
        MxTensor shape_only;
        shape_only.shape = t.shape;
        shape_only.spec = *t.spec;
        spec = json::parse(io::mx_spec_json(shape_only));
        spec.erase("shape");
      }
      spec["text"] = t.spec_text;
      x["spec"] = spec;
    }
    tensors.push_back(std::move(x));
  }
  j["tensors"] = std::move(tensors);
  json total;
  total["tensors"] = in.tensors.size();
  total["mx_tensors"] = in.mx_count();
  total["parameters"] = in.parameters();
  total["bytes"] = in.bytes();
  total["bf16_bytes"] = in.bf16_bytes();
  total["ratio"] = ratio_json(in.ratio());
  j["total"] = std::move(total);
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace mx::convert
