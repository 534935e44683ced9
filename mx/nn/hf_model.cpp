#include "mx/nn/hf_model.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <utility>

#include "mx/core/dtype.h"
#include "mx/io/cat.h"
#include "mx/nn/model_file.h"

namespace mx::nn {
namespace {

using io::cat;
using io::format_shape;
using nlohmann::json;

// config.json's values, with transformers' defaults for absent keys.
struct ConfigJson {
  const json& j;

  std::string text(const char* key, const char* fallback) const {
    const auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
  }
  bool flag(const char* key, bool fallback) const {
    const auto it = j.find(key);
    return it != j.end() && it->is_boolean() ? it->get<bool>() : fallback;
  }
  // A positive whole number, or an error naming the key.
  std::string count(const char* key, int64_t* out) const {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() <= 0) {
      return cat("config.json: \"", key, "\" must be a positive whole number");
    }
    *out = it->get<int64_t>();
    return "";
  }
  // Absent, null or equal to `want`.
  bool number_is(const char* key, double want) const {
    const auto it = j.find(key);
    return it == j.end() || it->is_null() || (it->is_number() && it->get<double>() == want);
  }
};

std::string gpt2_config(const ConfigJson& j, ModelConfig* out) {
  if (const std::string act = j.text("activation_function", "gelu_new");
      act != "gelu_new" && act != "gelu_pytorch_tanh") {
    return cat("config.json: activation_function '", io::one_line(act),
               "' is not the tanh GELU (gelu_new) that mxkit runs");
  }
  if (!j.number_is("layer_norm_epsilon", kNormEpsilon)) {
    return "config.json: layer_norm_epsilon must be 1e-05, the epsilon mxkit runs";
  }
  if (j.flag("add_cross_attention", false) || !j.flag("scale_attn_weights", true) ||
      j.flag("scale_attn_by_inverse_layer_idx", false)) {
    return "config.json: cross-attention or attention scaled other than by 1/sqrt(head size) "
           "is not GPT-2 as mxkit runs it";
  }
  ModelConfig c;
  c.arch = Arch::kGpt2;
  for (auto [key, field] : {std::pair{"n_layer", &c.n_layers}, std::pair{"n_embd", &c.dim},
                            std::pair{"n_head", &c.n_heads}, std::pair{"vocab_size", &c.vocab}}) {
    if (std::string e = j.count(key, field); !e.empty()) return e;
  }
  if (std::string e = j.count(j.j.contains("n_positions") ? "n_positions" : "n_ctx", &c.seq_len);
      !e.empty()) {
    return e;
  }
  c.n_kv_heads = c.n_heads;
  c.hidden = 4 * c.dim;
  if (const auto inner = j.j.find("n_inner"); inner != j.j.end() && !inner->is_null()) {
    if (std::string e = j.count("n_inner", &c.hidden); !e.empty()) return e;
  }
  c.tied = j.flag("tie_word_embeddings", true);
  *out = c;
  return "";
}

std::string llama_config(const ConfigJson& j, ModelConfig* out) {
  if (const std::string act = j.text("hidden_act", "silu"); act != "silu") {
    return cat("config.json: hidden_act '", io::one_line(act), "' is not the SiLU mxkit runs");
  }
  if (!j.number_is("rms_norm_eps", kNormEpsilon)) {
    return "config.json: rms_norm_eps must be 1e-05, the epsilon mxkit runs";
  }
  // Newer transformers write RoPE's settings as one object.
  const json none = json::object();
  const auto parameters = j.j.find("rope_parameters");
  const ConfigJson rope{parameters != j.j.end() && parameters->is_object() ? *parameters : none};
  if (!j.number_is("rope_theta", kRopeBase) || !rope.number_is("rope_theta", kRopeBase) ||
      rope.text("rope_type", "default") != "default" ||
      (j.j.contains("rope_scaling") && !j.j["rope_scaling"].is_null()) ||
      !j.number_is("partial_rotary_factor", 1.0)) {
    return "config.json: RoPE other than base 10000, unscaled, over the whole head is not Llama "
           "as mxkit runs it";
  }
  if (j.flag("attention_bias", false) || j.flag("mlp_bias", false)) {
    return "config.json: biases in attention or the MLP are not Llama as mxkit runs it";
  }
  ModelConfig c;
  c.arch = Arch::kLlama;
  for (auto [key, field] :
       {std::pair{"num_hidden_layers", &c.n_layers}, std::pair{"hidden_size", &c.dim},
        std::pair{"num_attention_heads", &c.n_heads}, std::pair{"vocab_size", &c.vocab},
        std::pair{"intermediate_size", &c.hidden},
        std::pair{"max_position_embeddings", &c.seq_len}}) {
    if (std::string e = j.count(key, field); !e.empty()) return e;
  }
  c.n_kv_heads = c.n_heads;
  if (j.j.contains("num_key_value_heads") && !j.j["num_key_value_heads"].is_null()) {
    if (std::string e = j.count("num_key_value_heads", &c.n_kv_heads); !e.empty()) return e;
  }
  if (c.n_heads > 0 && !j.number_is("head_dim", double(c.dim / c.n_heads))) {
    return "config.json: head_dim must be hidden_size / num_attention_heads";
  }
  c.tied = j.flag("tie_word_embeddings", false);
  *out = c;
  return "";
}

// Appends an F32 tensor (io::SafetensorsTensor or io::TensorToWrite) whose floats `storage`
// keeps. The tensor points at its vector's heap buffer, which stays in place when `storage`
// grows (a moved vector keeps its buffer).
template <class Tensor>
void add_f32(std::string name, std::vector<int64_t> shape, std::vector<float> values,
             std::vector<std::vector<float>>* storage, std::vector<Tensor>* out) {
  storage->push_back(std::move(values));
  const std::vector<float>& v = storage->back();
  const auto* bytes = reinterpret_cast<const uint8_t*>(v.data());
  out->push_back({std::move(name), "F32", std::move(shape), {bytes, v.size() * sizeof(float)}});
}

// Reads source tensors and appends the engine's (add_f32).
struct Converter {
  std::span<const io::SafetensorsFile* const> files;  // a checkpoint's shards
  std::vector<std::vector<float>>* storage;
  std::vector<io::SafetensorsTensor>* out;

  const io::SafetensorsTensor* find(std::string_view name) const {
    for (const io::SafetensorsFile* f : files) {
      if (const io::SafetensorsTensor* t = f->find(name)) return t;
    }
    return nullptr;
  }

  // The source tensor as floats in its stored order, checked against `shape`.
  std::string read(const std::string& name, const std::vector<int64_t>& shape,
                   std::vector<float>* values) const {
    const io::SafetensorsTensor* t = find(name);
    if (t == nullptr) return cat("tensor ", name, " is missing");
    if (t->shape != shape) {
      return cat("tensor ", name, " has shape ", format_shape(t->shape), ", the config needs ",
                 format_shape(shape));
    }
    const std::optional<DType> dtype = io::safetensors_float_dtype(t->dtype);
    if (!dtype) return cat("tensor ", name, " has dtype ", t->dtype, ", not F32, BF16 or F16");
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    values->resize(size_t(n));
    for (int64_t i = 0; i < n; ++i)
      (*values)[size_t(i)] = load_as_float(t->bytes.data(), *dtype, i);
    return "";
  }

  void add(std::string name, std::vector<int64_t> shape, std::vector<float> values) const {
    add_f32(std::move(name), std::move(shape), std::move(values), storage, out);
  }

  // A tensor as it is stored.
  std::string copy(const std::string& from, const std::string& to,
                   std::vector<int64_t> shape) const {
    std::vector<float> v;
    if (std::string e = read(from, shape, &v); !e.empty()) return e;
    add(to, std::move(shape), std::move(v));
    return "";
  }
};

// Columns [first, first + count) of a row-major [rows, cols] matrix, transposed: [count, rows].
std::vector<float> transposed_columns(const std::vector<float>& m, int64_t rows, int64_t cols,
                                      int64_t first, int64_t count) {
  std::vector<float> t(size_t(count * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < count; ++c) t[size_t(c * rows + r)] = m[size_t(r * cols + first + c)];
  }
  return t;
}

std::string gpt2_tensors(const Converter& x, const ModelConfig& c) {
  const std::string p =
      x.find("transformer.h.0.attn.c_attn.weight") != nullptr ? "transformer." : "";
  const int64_t C = c.dim, H = c.hidden;
  if (std::string e = x.copy(p + "wte.weight", "transformer.wte.weight", {c.vocab, C});
      !e.empty()) {
    return e;
  }
  if (std::string e = x.copy(p + "wpe.weight", "transformer.wpe.weight", {c.seq_len, C});
      !e.empty()) {
    return e;
  }
  std::vector<float> qkv, qkv_bias, w;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string from = cat(p, "h.", i, "."), to = cat("transformer.h.", i, ".");
    for (const char* name : {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"}) {
      if (std::string e = x.copy(from + name, to + name, {C}); !e.empty()) return e;
    }
    if (std::string e = x.read(from + "attn.c_attn.weight", {C, 3 * C}, &qkv); !e.empty()) {
      return e;
    }
    if (std::string e = x.read(from + "attn.c_attn.bias", {3 * C}, &qkv_bias); !e.empty()) {
      return e;
    }
    const char* parts[] = {"q", "k", "v"};
    for (int64_t h = 0; h < 3; ++h) {
      x.add(cat(to, "attn.", parts[h], "_proj.weight"), {C, C},
            transposed_columns(qkv, C, 3 * C, h * C, C));
      x.add(cat(to, "attn.", parts[h], "_proj.bias"), {C},
            std::vector<float>(qkv_bias.begin() + h * C, qkv_bias.begin() + (h + 1) * C));
    }
    // Conv1D weights [in, out] as the engine's [out, in].
    for (auto [name, in, outs] : {std::tuple{"attn.c_proj", C, C}, std::tuple{"mlp.c_fc", C, H},
                                  std::tuple{"mlp.c_proj", H, C}}) {
      const std::string layer = name;
      if (std::string e = x.read(from + layer + ".weight", {in, outs}, &w); !e.empty()) return e;
      x.add(to + layer + ".weight", {outs, in}, transposed_columns(w, in, outs, 0, outs));
      if (std::string e = x.copy(from + layer + ".bias", to + layer + ".bias", {outs});
          !e.empty()) {
        return e;
      }
    }
  }
  for (const char* name : {"ln_f.weight", "ln_f.bias"}) {
    if (std::string e = x.copy(p + name, cat("transformer.", name), {C}); !e.empty()) return e;
  }
  return c.tied ? "" : x.copy("lm_head.weight", "lm_head.weight", {c.vocab, C});
}

// The two row orders of a q or k projection [heads * hs, cols] within each head: the engine's
// adjacent pairs (row 2i + j), as Meta's Llama rotates them, and transformers' rotate-half order
// (row j * hs/2 + i).
enum class RotaryRows { kPairs, kHalves };

// `w`'s rows, stored in the order other than `to`, put in order `to`.
std::vector<float> reorder_rotary_rows(const float* w, int64_t heads, int64_t hs, int64_t cols,
                                       RotaryRows to) {
  std::vector<float> out(size_t(heads * hs * cols));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < hs / 2; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t pair_row = h * hs + 2 * i + j, half_row = h * hs + j * (hs / 2) + i;
        const bool to_pairs = to == RotaryRows::kPairs;
        const float* src = w + (to_pairs ? half_row : pair_row) * cols;
        std::copy(src, src + cols, out.data() + (to_pairs ? pair_row : half_row) * cols);
      }
    }
  }
  return out;
}

std::string llama_tensors(const Converter& x, const ModelConfig& c) {
  const int64_t C = c.dim, H = c.hidden, hs = c.head_size(), kv = c.n_kv_heads * hs;
  if (std::string e =
          x.copy("model.embed_tokens.weight", "model.embed_tokens.weight", {c.vocab, C});
      !e.empty()) {
    return e;
  }
  std::vector<float> w;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string layer = cat("model.layers.", i, ".");
    for (auto [name, heads] : {std::pair{"self_attn.q_proj.weight", c.n_heads},
                               std::pair{"self_attn.k_proj.weight", c.n_kv_heads}}) {
      if (std::string e = x.read(layer + name, {heads * hs, C}, &w); !e.empty()) return e;
      x.add(layer + name, {heads * hs, C},
            reorder_rotary_rows(w.data(), heads, hs, C, RotaryRows::kPairs));
    }
    for (auto [name, rows, cols] :
         {std::tuple{"self_attn.v_proj.weight", kv, C}, std::tuple{"self_attn.o_proj.weight", C, C},
          std::tuple{"mlp.gate_proj.weight", H, C}, std::tuple{"mlp.up_proj.weight", H, C},
          std::tuple{"mlp.down_proj.weight", C, H}}) {
      if (std::string e = x.copy(layer + name, layer + name, {rows, cols}); !e.empty()) return e;
    }
    for (const char* name : {"input_layernorm.weight", "post_attention_layernorm.weight"}) {
      if (std::string e = x.copy(layer + name, layer + name, {C}); !e.empty()) return e;
    }
  }
  if (std::string e = x.copy("model.norm.weight", "model.norm.weight", {C}); !e.empty()) return e;
  return c.tied ? "" : x.copy("lm_head.weight", "lm_head.weight", {c.vocab, C});
}

}  // namespace

std::string hf_config_json(const ModelConfig& c) {
  json j;
  if (c.arch == Arch::kGpt2) {
    j = {{"model_type", "gpt2"},
         {"architectures", {"GPT2LMHeadModel"}},
         {"n_layer", c.n_layers},
         {"n_embd", c.dim},
         {"n_head", c.n_heads},
         {"vocab_size", c.vocab},
         {"n_positions", c.seq_len},
         {"n_ctx", c.seq_len},
         {"n_inner", c.hidden},
         {"activation_function", "gelu_new"},
         {"layer_norm_epsilon", kNormEpsilon},
         {"tie_word_embeddings", c.tied},
         {"torch_dtype", "float32"}};
  } else {
    j = {{"model_type", "llama"},
         {"architectures", {"LlamaForCausalLM"}},
         {"num_hidden_layers", c.n_layers},
         {"hidden_size", c.dim},
         {"num_attention_heads", c.n_heads},
         {"num_key_value_heads", c.n_kv_heads},
         {"intermediate_size", c.hidden},
         {"vocab_size", c.vocab},
         {"max_position_embeddings", c.seq_len},
         {"hidden_act", "silu"},
         {"rms_norm_eps", kNormEpsilon},
         {"rope_theta", kRopeBase},
         {"attention_bias", false},
         {"mlp_bias", false},
         {"tie_word_embeddings", c.tied},
         {"torch_dtype", "float32"}};
  }
  return j.dump(2) + "\n";
}

void hf_checkpoint_tensors(const ModelConfig& c, const Params& params,
                           std::vector<std::vector<float>>* storage,
                           std::vector<io::TensorToWrite>* out) {
  auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float> values) {
    add_f32(std::move(name), std::move(shape), std::move(values), storage, out);
  };
  auto values = [&](const ParamView& v) {
    return std::vector<float>(params.data() + v.offset, params.data() + v.offset + v.size);
  };
  const int64_t C = c.dim, hs = c.head_size();
  for (const ParamView& v : params.views()) {
    const std::string& n = v.name;
    if (c.arch == Arch::kLlama) {
      const bool q = n.find(".q_proj.") != std::string::npos;
      if (q || n.find(".k_proj.") != std::string::npos) {
        add(n, v.shape,
            reorder_rotary_rows(params.data() + v.offset, q ? c.n_heads : c.n_kv_heads, hs, C,
                                RotaryRows::kHalves));
      } else {
        add(n, v.shape, values(v));
      }
      continue;
    }
    // GPT-2: q, k and v go into c_attn (below, at q); every other weight [out, in] of a block
    // is a Conv1D [in, out].
    if (n.find(".attn.k_proj.") != std::string::npos ||
        n.find(".attn.v_proj.") != std::string::npos) {
      continue;
    }
    constexpr std::string_view kQuery = ".attn.q_proj.";
    if (const size_t at = n.find(kQuery); at != std::string::npos) {
      const std::string block = n.substr(0, at), part = n.substr(at + kQuery.size());
      std::vector<float> fused;
      for (const char* p : {"q", "k", "v"}) {
        const ParamView* w = params.find(cat(block, ".attn.", p, "_proj.", part));
        const std::vector<float> t = values(*w);
        fused.insert(fused.end(), t.begin(), t.end());
      }
      if (part == "bias") {
        add(block + ".attn.c_attn.bias", {3 * C}, std::move(fused));
      } else {
        add(block + ".attn.c_attn.weight", {C, 3 * C},
            transposed_columns(fused, 3 * C, C, 0, C));  // [3C, C] -> [C, 3C]
      }
      continue;
    }
    const bool conv1d = v.shape.size() == 2 && n.starts_with("transformer.h.");
    if (conv1d) {
      add(n, {v.shape[1], v.shape[0]},
          transposed_columns(values(v), v.shape[0], v.shape[1], 0, v.shape[1]));
    } else {
      add(n, v.shape, values(v));
    }
  }
}

std::string hf_shard_names(std::string_view index_json, std::vector<std::string>* out) {
  const json j = json::parse(index_json, nullptr, false);
  const auto map = j.is_object() ? j.find("weight_map") : j.end();
  if (map == j.end() || !map->is_object() || map->empty()) {
    return "model.safetensors.index.json has no \"weight_map\" of tensor names to files";
  }
  std::vector<std::string> names;
  for (const auto& [tensor, file] : map->items()) {
    if (!file.is_string()) return cat("the index maps ", io::one_line(tensor), " to no file name");
    const std::string name = file.get<std::string>();
    if (name.empty() || name == "." || name == ".." ||
        name.find_first_of("/\\") != std::string::npos) {
      return cat("the index names '", io::one_line(name), "', not a file in its folder");
    }
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  *out = std::move(names);
  return "";
}

bool is_hf_checkpoint(const io::SafetensorsFile& file) {
  const auto& meta = file.metadata();
  if (meta.count(std::string(kModelConfigKey)) != 0 || meta.count("llama2c.dim") != 0) return false;
  return file.find("transformer.h.0.attn.c_attn.weight") != nullptr ||
         file.find("h.0.attn.c_attn.weight") != nullptr ||
         file.find("model.layers.0.self_attn.q_proj.weight") != nullptr;
}

std::string hf_config(std::string_view config_json, ModelConfig* out) {
  const json j = json::parse(config_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "config.json is not a JSON object";
  const ConfigJson config{j};
  const std::string type = config.text("model_type", "");
  ModelConfig c;
  std::string e;
  if (type == "gpt2") {
    e = gpt2_config(config, &c);
  } else if (type == "llama") {
    e = llama_config(config, &c);
  } else {
    return cat("config.json: model_type '", io::one_line(type),
               "' is none that mxkit runs ('gpt2', 'llama')");
  }
  if (!e.empty()) return e;
  if (e = validate(c); !e.empty()) return cat("config.json: ", e);
  *out = c;
  return "";
}

std::string hf_engine_tensors(std::span<const io::SafetensorsFile* const> files,
                              const ModelConfig& config, std::vector<std::vector<float>>* storage,
                              std::vector<io::SafetensorsTensor>* out) {
  const Converter x{files, storage, out};
  return config.arch == Arch::kGpt2 ? gpt2_tensors(x, config) : llama_tensors(x, config);
}

}  // namespace mx::nn
