#include "mx/nn/hf_gpt2.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>

#include "mx/core/dtype.h"
#include "mx/io/cat.h"

namespace mx::nn {
namespace {

using io::cat;
using io::format_shape;
using nlohmann::json;

constexpr double kEngineNormEpsilon = 1e-5;  // nn/cpu/norm.cpp

std::string prefix_of(const io::SafetensorsFile& file) {
  return file.find("transformer.h.0.attn.c_attn.weight") != nullptr ? "transformer." : "";
}

// A whole number from config.json, or an error naming the key.
std::string read_count(const json& j, const char* key, int64_t* out) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
    return cat("config.json: \"", key, "\" must be a positive whole number");
  }
  *out = it->get<int64_t>();
  return "";
}

// The source tensor as floats in its stored [rows, cols] order, checked against `shape`.
std::string read_floats(const io::SafetensorsFile& file, const std::string& name,
                        const std::vector<int64_t>& shape, std::vector<float>* out) {
  const io::SafetensorsTensor* t = file.find(name);
  if (t == nullptr) return cat("tensor ", name, " is missing");
  if (t->shape != shape) {
    return cat("tensor ", name, " has shape ", format_shape(t->shape), ", the config needs ",
               format_shape(shape));
  }
  const std::optional<DType> dtype = io::safetensors_float_dtype(t->dtype);
  if (!dtype) return cat("tensor ", name, " has dtype ", t->dtype, ", not F32, BF16 or F16");
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  out->resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) (*out)[size_t(i)] = load_as_float(t->bytes.data(), *dtype, i);
  return "";
}

// Appends an engine tensor whose floats `storage` keeps. The tensor points at the vector's heap
// buffer, which stays in place when `storage` grows (a moved vector keeps its buffer).
void add_engine_tensor(std::string name, std::vector<int64_t> shape, std::vector<float> values,
                       std::vector<std::vector<float>>* storage,
                       std::vector<io::SafetensorsTensor>* out) {
  storage->push_back(std::move(values));
  const std::vector<float>& v = storage->back();
  const auto* bytes = reinterpret_cast<const uint8_t*>(v.data());
  out->push_back({std::move(name), "F32", std::move(shape), {bytes, v.size() * sizeof(float)}});
}

// Columns [first, first + count) of a row-major [rows, cols] matrix, transposed: [count, rows].
std::vector<float> transposed_columns(const std::vector<float>& m, int64_t rows, int64_t cols,
                                      int64_t first, int64_t count) {
  std::vector<float> t(size_t(count * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < count; ++c) t[size_t(c * rows + r)] = m[size_t(r * cols + first + c)];
  }
  return t;
}

}  // namespace

bool is_hf_gpt2(const io::SafetensorsFile& file) {
  return file.find("transformer.h.0.attn.c_attn.weight") != nullptr ||
         file.find("h.0.attn.c_attn.weight") != nullptr;
}

std::string hf_gpt2_config(std::string_view config_json, ModelConfig* out) {
  const json j = json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "config.json is not a JSON object";
  auto text = [&](const char* key, const char* fallback) {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
  };
  auto flag = [&](const char* key, bool fallback) {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
  };
  if (const std::string type = text("model_type", "gpt2"); type != "gpt2") {
    return cat("config.json: model_type is '", io::one_line(type), "', not 'gpt2'");
  }
  if (const std::string act = text("activation_function", "gelu_new");
      act != "gelu_new" && act != "gelu_pytorch_tanh") {
    return cat("config.json: activation_function '", io::one_line(act),
               "' is not the tanh GELU (gelu_new) that mxkit runs");
  }
  if (const auto eps = j.find("layer_norm_epsilon");
      eps != j.end() && (!eps->is_number() || eps->get<double>() != kEngineNormEpsilon)) {
    return "config.json: layer_norm_epsilon must be 1e-05, the epsilon mxkit runs";
  }
  if (flag("add_cross_attention", false) || !flag("scale_attn_weights", true) ||
      flag("scale_attn_by_inverse_layer_idx", false)) {
    return "config.json: cross-attention or attention scaled other than by 1/sqrt(head size) "
           "is not GPT-2 as mxkit runs it";
  }
  ModelConfig c;
  c.arch = Arch::kGpt2;
  for (auto [key, field] : {std::pair{"n_layer", &c.n_layers}, std::pair{"n_embd", &c.dim},
                            std::pair{"n_head", &c.n_heads}, std::pair{"vocab_size", &c.vocab}}) {
    if (std::string e = read_count(j, key, field); !e.empty()) return e;
  }
  const char* positions = j.contains("n_positions") ? "n_positions" : "n_ctx";
  if (std::string e = read_count(j, positions, &c.seq_len); !e.empty()) return e;
  c.n_kv_heads = c.n_heads;
  c.hidden = 4 * c.dim;
  if (const auto inner = j.find("n_inner"); inner != j.end() && !inner->is_null()) {
    if (std::string e = read_count(j, "n_inner", &c.hidden); !e.empty()) return e;
  }
  c.tied = flag("tie_word_embeddings", true);
  if (std::string e = validate(c); !e.empty()) return cat("config.json: ", e);
  *out = c;
  return "";
}

std::string hf_gpt2_engine_tensors(const io::SafetensorsFile& file, const ModelConfig& c,
                                   std::vector<std::vector<float>>* storage,
                                   std::vector<io::SafetensorsTensor>* out) {
  const std::string p = prefix_of(file);
  const int64_t C = c.dim, H = c.hidden;
  auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float> values) {
    add_engine_tensor(std::move(name), std::move(shape), std::move(values), storage, out);
  };
  std::vector<float> v;
  // A tensor kept as it is stored: embeddings, norms, biases.
  auto copy = [&](const std::string& from, const std::string& to, std::vector<int64_t> shape) {
    if (std::string e = read_floats(file, from, shape, &v); !e.empty()) return e;
    add(to, std::move(shape), std::move(v));
    return std::string();
  };
  // A Conv1D weight [in, out] as the engine's [out, in].
  auto transpose = [&](const std::string& from, const std::string& to, int64_t in, int64_t outs) {
    if (std::string e = read_floats(file, from, {in, outs}, &v); !e.empty()) return e;
    add(to, {outs, in}, transposed_columns(v, in, outs, 0, outs));
    return std::string();
  };
  if (std::string e = copy(p + "wte.weight", "transformer.wte.weight", {c.vocab, C}); !e.empty()) {
    return e;
  }
  if (std::string e = copy(p + "wpe.weight", "transformer.wpe.weight", {c.seq_len, C});
      !e.empty()) {
    return e;
  }
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string from = cat(p, "h.", i, "."), to = cat("transformer.h.", i, ".");
    for (const char* norm : {"ln_1", "ln_2"}) {
      for (const char* part : {".weight", ".bias"}) {
        if (std::string e = copy(from + norm + part, to + norm + part, {C}); !e.empty()) return e;
      }
    }
    if (std::string e = read_floats(file, from + "attn.c_attn.weight", {C, 3 * C}, &v);
        !e.empty()) {
      return e;
    }
    const std::vector<float> qkv = v;
    if (std::string e = read_floats(file, from + "attn.c_attn.bias", {3 * C}, &v); !e.empty()) {
      return e;
    }
    const std::vector<float> qkv_bias = v;
    const char* heads[] = {"q", "k", "v"};
    for (int64_t h = 0; h < 3; ++h) {
      add(cat(to, "attn.", heads[h], "_proj.weight"), {C, C},
          transposed_columns(qkv, C, 3 * C, h * C, C));
      add(cat(to, "attn.", heads[h], "_proj.bias"), {C},
          std::vector<float>(qkv_bias.begin() + h * C, qkv_bias.begin() + (h + 1) * C));
    }
    for (auto [name, in, outs] : {std::tuple{"attn.c_proj", C, C}, std::tuple{"mlp.c_fc", C, H},
                                  std::tuple{"mlp.c_proj", H, C}}) {
      const std::string layer = name;
      if (std::string e = transpose(from + layer + ".weight", to + layer + ".weight", in, outs);
          !e.empty()) {
        return e;
      }
      if (std::string e = copy(from + layer + ".bias", to + layer + ".bias", {outs}); !e.empty()) {
        return e;
      }
    }
  }
  for (const char* part : {".weight", ".bias"}) {
    const std::string name = cat("ln_f", part);
    if (std::string e = copy(p + name, "transformer." + name, {C}); !e.empty()) return e;
  }
  if (!c.tied) {
    if (std::string e = copy("lm_head.weight", "lm_head.weight", {c.vocab, C}); !e.empty()) {
      return e;
    }
  }
  return "";
}

}  // namespace mx::nn
