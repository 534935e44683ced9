#include "mx/io/mx_safetensors.h"

#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/core/rounding.h"
#include "mx/core/scale_rule.h"

#include "mx/io/cat.h"

namespace mx::io {
namespace {

static_assert(std::endian::native == std::endian::little, "offsets are stored as host U16");

std::string shape_text(std::span<const int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(shape[i]);
  }
  s += "]";
  return s;
}

// The shapes NAME.blocks and NAME.scales get for `t` (whose grid is `grid`).
std::vector<int64_t> blocks_shape(const MxTensor& t) {
  if (check_mxfp4_rowwise(t).empty()) {
    std::vector<int64_t> s = t.shape;
    s.back() /= 32;
    s.push_back(16);
    return s;
  }
  return {static_cast<int64_t>(t.elements.size())};
}

}  // namespace

std::string mx_metadata_key(const std::string& name) {
  return "mx." + name;
}

std::string mx_spec_json(const MxTensor& t) {
  const QuantSpec& s = t.spec;
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  j["shape"] = t.shape;
  j["format"] = traits(s.format).mx_name;
  j["block"] = s.block_size;
  j["axis"] = s.axis;
  j["tile"] = {s.tile_rows, s.tile_cols};
  j["scale"] = scale_rule_name(s.scale_rule);
  j["round"] = rounding_name(s.rounding);
  j["seed"] = s.seed;
  j["asym"] = s.asymmetric;
  j["flush"] = s.flush_subnormals;
  j["zero_scale"] = s.zero_block_scale;
  return j.dump();
}

std::string parse_mx_spec_json(const std::string& json, std::vector<int64_t>* shape,
                               QuantSpec* spec) {
  // A valid spec nests 2 deep. Deeper values are dropped while parsing: quoting one in an error
  // (dump() recurses) could overflow the stack.
  constexpr int kMaxDepth = 8;
  bool too_deep = false;
  const auto callback = [&](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > kMaxDepth) too_deep = true;
    return depth <= kMaxDepth;
  };
  nlohmann::json j = nlohmann::json::parse(json, callback, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "MX spec is not valid JSON";
  if (too_deep) return cat("MX spec nests deeper than ", kMaxDepth, " levels");
  if (!j.is_object()) return "MX spec is not a JSON object";
  static const char* const kKeys[] = {"shape", "format", "block", "axis", "tile",
                                      "scale", "round",  "seed",  "asym", "flush"};
  for (const auto& [key, value] : j.items()) {
    bool known = key == "zero_scale";
    for (const char* k : kKeys) known = known || key == k;
    if (!known) return cat("MX spec has unknown key '", key, "'");
  }
  for (const char* k : kKeys) {
    if (!j.contains(k)) return cat("MX spec lacks '", k, "'");
  }
  QuantSpec s;
  const auto& js = j["shape"];
  if (!js.is_array()) return "MX spec 'shape' is not an array";
  shape->clear();
  for (const auto& d : js) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0 ||
        (d.is_number_unsigned() && d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
      return cat("MX spec 'shape' holds a bad dimension ", d.dump());
    }
    shape->push_back(d.get<int64_t>());
  }
  if (!j["format"].is_string()) return "MX spec 'format' is not a string";
  const auto format = parse_format(j["format"].get<std::string>());
  if (!format) return cat("MX spec has unknown format '", j["format"].get<std::string>(), "'");
  s.format = *format;
  auto small_int = [&](const char* key, const nlohmann::json& v, int* out) -> std::string {
    if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX ||
        (v.is_number_unsigned() && v.get<uint64_t>() > INT32_MAX)) {
      return cat("MX spec '", key, "' is not a 32-bit integer");
    }
    *out = static_cast<int>(v.get<int64_t>());
    return "";
  };
  if (auto e = small_int("block", j["block"], &s.block_size); !e.empty()) return e;
  if (auto e = small_int("axis", j["axis"], &s.axis); !e.empty()) return e;
  const auto& tile = j["tile"];
  if (!tile.is_array() || tile.size() != 2) return "MX spec 'tile' is not a pair";
  if (auto e = small_int("tile", tile[0], &s.tile_rows); !e.empty()) return e;
  if (auto e = small_int("tile", tile[1], &s.tile_cols); !e.empty()) return e;
  if (!j["scale"].is_string()) return "MX spec 'scale' is not a string";
  const auto rule = parse_scale_rule(j["scale"].get<std::string>());
  if (!rule) return cat("MX spec has unknown scale rule '", j["scale"].get<std::string>(), "'");
  s.scale_rule = *rule;
  if (!j["round"].is_string()) return "MX spec 'round' is not a string";
  const auto round = parse_rounding(j["round"].get<std::string>());
  if (!round) return cat("MX spec has unknown rounding '", j["round"].get<std::string>(), "'");
  s.rounding = *round;
  if (!j["seed"].is_number_unsigned()) return "MX spec 'seed' is not a non-negative integer";
  s.seed = j["seed"].get<uint64_t>();
  if (!j["asym"].is_boolean()) return "MX spec 'asym' is not a boolean";
  s.asymmetric = j["asym"].get<bool>();
  if (!j["flush"].is_boolean()) return "MX spec 'flush' is not a boolean";
  s.flush_subnormals = j["flush"].get<bool>();
  if (j.contains("zero_scale")) {
    const auto& z = j["zero_scale"];
    if (!z.is_number_unsigned() || z.get<uint64_t>() > 255) {
      return "MX spec 'zero_scale' is not a byte";
    }
    s.zero_block_scale = static_cast<uint8_t>(z.get<uint64_t>());
  }
  if (auto e = validate(s); !e.empty()) return cat("MX spec: ", e);
  *spec = s;
  return "";
}

std::string add_mx_tensor(const std::string& name, const MxTensor& t,
                          std::vector<TensorToWrite>* tensors,
                          std::map<std::string, std::string>* metadata) {
  if (auto e = check_consistent(t); !e.empty()) return cat("MX tensor '", name, "': ", e);
  std::string err;
  const BlockGrid grid = make_block_grid(t.shape, t.spec, &err);
  if (!err.empty()) return cat("MX tensor '", name, "': ", err);
  std::vector<TensorToWrite> add;
  add.push_back({name + ".blocks", "U8", blocks_shape(t), t.elements});
  add.push_back({name + ".scales", "U8", grid.scale_shape, t.scales});
  if (t.spec.asymmetric) {
    add.push_back({name + ".offsets", "U16", grid.scale_shape,
                   std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(t.offsets.data()),
                                            t.offsets.size() * sizeof(uint16_t))});
  }
  for (const auto& a : add) {
    for (const auto& existing : *tensors) {
      if (existing.name == a.name) return cat("tensor '", a.name, "' is already in the list");
    }
  }
  const std::string key = mx_metadata_key(name);
  if (metadata->count(key) != 0) return cat("metadata key '", key, "' is already set");
  for (auto& a : add) tensors->push_back(std::move(a));
  (*metadata)[key] = mx_spec_json(t);
  return "";
}

namespace {

std::string load_one(const SafetensorsFile& file, const std::string& name, MxTensor* out) {
  const std::string key = mx_metadata_key(name);
  const auto it = file.metadata().find(key);
  if (it == file.metadata().end()) return cat("no metadata key '", key, "'");
  // Readers that look a name up could otherwise take either one.
  if (file.find(name) != nullptr) {
    return cat("the file has both a plain tensor '", name, "' and an MX tensor '", name, "'");
  }
  MxTensor t;
  if (auto e = parse_mx_spec_json(it->second, &t.shape, &t.spec); !e.empty()) {
    return cat("metadata '", key, "': ", e);
  }
  std::string err;
  const BlockGrid grid = make_block_grid(t.shape, t.spec, &err);
  if (!err.empty()) return cat("MX tensor '", name, "': ", err);
  const MxStorageSizes sizes = storage_sizes(grid, t.spec);

  auto component = [&](const std::string& suffix, const char* dtype,
                       const SafetensorsTensor** found) -> std::string {
    const std::string n = name + suffix;
    *found = file.find(n);
    if (*found == nullptr) return cat("MX tensor '", name, "' lacks tensor '", n, "'");
    if ((*found)->dtype != dtype) {
      return cat("tensor '", n, "' has dtype ", (*found)->dtype, ", expected ", dtype);
    }
    return "";
  };
  const SafetensorsTensor* blocks = nullptr;
  const SafetensorsTensor* scales = nullptr;
  if (auto e = component(".blocks", "U8", &blocks); !e.empty()) return e;
  if (auto e = component(".scales", "U8", &scales); !e.empty()) return e;
  if (static_cast<int64_t>(blocks->bytes.size()) != sizes.element_bytes) {
    return cat("tensor '", blocks->name, "' has ", blocks->bytes.size(), " bytes, expected ",
               sizes.element_bytes, " for shape ", shape_text(t.shape), " and ", describe(t.spec));
  }
  t.elements.assign(blocks->bytes.begin(), blocks->bytes.end());
  if (scales->shape != grid.scale_shape) {
    return cat("tensor '", scales->name, "' has shape ", shape_text(scales->shape), ", expected ",
               shape_text(grid.scale_shape));
  }
  t.scales.assign(scales->bytes.begin(), scales->bytes.end());
  if (t.spec.asymmetric) {
    const SafetensorsTensor* offsets = nullptr;
    if (auto e = component(".offsets", "U16", &offsets); !e.empty()) return e;
    if (offsets->shape != grid.scale_shape) {
      return cat("tensor '", offsets->name, "' has shape ", shape_text(offsets->shape),
                 ", expected ", shape_text(grid.scale_shape));
    }
    t.offsets.resize(offsets->bytes.size() / 2);
    std::memcpy(t.offsets.data(), offsets->bytes.data(), t.offsets.size() * 2);
  } else if (file.find(name + ".offsets") != nullptr) {
    return cat("MX tensor '", name, "' is symmetric but has tensor '", name, ".offsets'");
  }
  const std::vector<int64_t> want_blocks = blocks_shape(t);
  if (blocks->shape != want_blocks) {
    return cat("tensor '", blocks->name, "' has shape ", shape_text(blocks->shape), ", expected ",
               shape_text(want_blocks));
  }
  if (auto e = check_consistent(t); !e.empty()) return cat("MX tensor '", name, "': ", e);
  *out = std::move(t);
  return "";
}

}  // namespace

std::string load_mx_tensor(const SafetensorsFile& file, const std::string& name, MxTensor* out) {
  return one_line(load_one(file, name, out));
}

std::vector<std::string> mx_component_names(const std::string& name, const MxTensor& t) {
  std::vector<std::string> names = {name + ".blocks", name + ".scales"};
  if (t.spec.asymmetric) names.push_back(name + ".offsets");
  return names;
}

std::string check_mx_tensors(const SafetensorsFile& file) {
  for (const auto& [key, value] : file.metadata()) {
    if (key.rfind("mx.", 0) != 0) continue;
    MxTensor t;  // one at a time: a check holds no more than the largest tensor
    if (std::string e = load_mx_tensor(file, key.substr(3), &t); !e.empty()) return e;
  }
  return "";
}

std::string load_mx_tensors(const SafetensorsFile& file, std::map<std::string, MxTensor>* out) {
  out->clear();
  for (const auto& [key, value] : file.metadata()) {
    if (key.rfind("mx.", 0) != 0) continue;
    const std::string name = key.substr(3);
    MxTensor t;
    if (auto e = load_mx_tensor(file, name, &t); !e.empty()) {
      out->clear();
      return e;
    }
    (*out)[name] = std::move(t);
  }
  return "";
}

}  // namespace mx::io
