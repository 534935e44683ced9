#include "mx/nn/gguf_model.h"

#include <cstdio>

#include "mx/core/dtype.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/io/cat.h"
#include "mx/io/gguf_values.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::nn {
namespace {

using io::cat;
using io::format_shape;
using io::gguf_kv;

// A context longer than this is refused: nothing in a Llama file bounds it, and it sizes the
// key/value cache.
constexpr int64_t kMaxContext = int64_t{1} << 20;

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

std::string block(int64_t i, const char* suffix) {
  return cat("blk.", i, ".", suffix);
}

std::string layer(const ModelConfig& c, int64_t i, const char* suffix) {
  return cat(c.arch == Arch::kGpt2 ? "transformer.h." : "model.layers.", i, ".", suffix);
}

std::vector<GgufModelTensor> llama_tensors(const ModelConfig& c) {
  const int64_t C = c.dim, H = c.hidden, kv = c.n_kv_heads * c.head_size();
  std::vector<GgufModelTensor> t;
  t.push_back({"token_embd.weight", {c.vocab, C}, {"model.embed_tokens.weight"}});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const auto add = [&](const char* name, std::vector<int64_t> shape, const char* param) {
      t.push_back({block(i, name), std::move(shape), {layer(c, i, param)}});
    };
    add("attn_norm.weight", {C}, "input_layernorm.weight");
    add("attn_q.weight", {C, C}, "self_attn.q_proj.weight");
    add("attn_k.weight", {kv, C}, "self_attn.k_proj.weight");
    add("attn_v.weight", {kv, C}, "self_attn.v_proj.weight");
    add("attn_output.weight", {C, C}, "self_attn.o_proj.weight");
    add("ffn_norm.weight", {C}, "post_attention_layernorm.weight");
    add("ffn_gate.weight", {H, C}, "mlp.gate_proj.weight");
    add("ffn_up.weight", {H, C}, "mlp.up_proj.weight");
    add("ffn_down.weight", {C, H}, "mlp.down_proj.weight");
  }
  t.push_back({"output_norm.weight", {C}, {"model.norm.weight"}});
  if (!c.tied) t.push_back({"output.weight", {c.vocab, C}, {"lm_head.weight"}});
  return t;
}

std::vector<GgufModelTensor> gpt2_tensors(const ModelConfig& c) {
  const int64_t C = c.dim, H = c.hidden;
  std::vector<GgufModelTensor> t;
  t.push_back({"token_embd.weight", {c.vocab, C}, {"transformer.wte.weight"}});
  t.push_back({"position_embd.weight", {c.seq_len, C}, {"transformer.wpe.weight"}});
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const auto add = [&](const char* name, std::vector<int64_t> shape, const char* param) {
      t.push_back({block(i, name), std::move(shape), {layer(c, i, param)}});
    };
    add("attn_norm.weight", {C}, "ln_1.weight");
    add("attn_norm.bias", {C}, "ln_1.bias");
    t.push_back({block(i, "attn_qkv.weight"),
                 {3 * C, C},
                 {layer(c, i, "attn.q_proj.weight"), layer(c, i, "attn.k_proj.weight"),
                  layer(c, i, "attn.v_proj.weight")}});
    t.push_back({block(i, "attn_qkv.bias"),
                 {3 * C},
                 {layer(c, i, "attn.q_proj.bias"), layer(c, i, "attn.k_proj.bias"),
                  layer(c, i, "attn.v_proj.bias")}});
    add("attn_output.weight", {C, C}, "attn.c_proj.weight");
    add("attn_output.bias", {C}, "attn.c_proj.bias");
    add("ffn_norm.weight", {C}, "ln_2.weight");
    add("ffn_norm.bias", {C}, "ln_2.bias");
    add("ffn_up.weight", {H, C}, "mlp.c_fc.weight");
    add("ffn_up.bias", {H}, "mlp.c_fc.bias");
    add("ffn_down.weight", {C, H}, "mlp.c_proj.weight");
    add("ffn_down.bias", {C}, "mlp.c_proj.bias");
  }
  t.push_back({"output_norm.weight", {C}, {"transformer.ln_f.weight"}});
  t.push_back({"output_norm.bias", {C}, {"transformer.ln_f.bias"}});
  if (!c.tied) t.push_back({"output.weight", {c.vocab, C}, {"lm_head.weight"}});
  return t;
}

// The architecture's KV `name`, e.g. "llama.block_count".
std::string arch_key(const ModelConfig& c, std::string_view name) {
  return cat(arch_name(c.arch), ".", name);
}

std::string read_count(const io::GgufFile& file, const std::string& key, bool required,
                       int64_t* out) {
  if (std::string e = io::read_gguf_integer(file, key, required, out); !e.empty()) return e;
  if (*out <= 0) return cat("the KV ", key, " is ", *out, ", not a positive count");
  return "";
}

// The engine's fixed hyperparameters: a file that asks for others is refused.
std::string check_fixed_hyperparameters(const io::GgufFile& file, const ModelConfig& c) {
  const bool llama = c.arch == Arch::kLlama;
  const std::string eps_key =
      arch_key(c, llama ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon");
  double eps = 0;
  if (std::string e = io::read_gguf_number(file, eps_key, true, &eps); !e.empty()) return e;
  if (float(eps) != float(kNormEpsilon)) {
    return cat(eps_key, " is ", number(eps), "; mxkit's norms use 1e-05");
  }
  if (!llama) return "";
  double base = kRopeBase;
  if (std::string e = io::read_gguf_number(file, arch_key(c, "rope.freq_base"), false, &base);
      !e.empty()) {
    return e;
  }
  if (base != kRopeBase) {
    return cat(arch_key(c, "rope.freq_base"), " is ", number(base), "; mxkit's RoPE uses 10000");
  }
  int64_t rope_dims = c.head_size();
  if (std::string e =
          io::read_gguf_integer(file, arch_key(c, "rope.dimension_count"), false, &rope_dims);
      !e.empty()) {
    return e;
  }
  if (rope_dims != c.head_size()) {
    return cat(arch_key(c, "rope.dimension_count"), " is ", rope_dims,
               "; mxkit rotates whole heads of ", c.head_size());
  }
  std::string scaling = "none";
  if (std::string e = io::read_gguf_string(file, arch_key(c, "rope.scaling.type"), false, &scaling);
      !e.empty()) {
    return e;
  }
  if (scaling != "none") {
    return cat(arch_key(c, "rope.scaling.type"), " is '", io::one_line(scaling),
               "'; mxkit has no RoPE scaling");
  }
  int64_t experts = 0;
  if (std::string e = io::read_gguf_integer(file, arch_key(c, "expert_count"), false, &experts);
      !e.empty()) {
    return e;
  }
  if (experts > 0)
    return cat(arch_key(c, "expert_count"), " is ", experts, "; mxkit has no experts");
  return "";
}

// The values of a tensor that check_tensor accepted, as float32.
std::string decode_tensor(const io::GgufTensor& t, std::vector<float>* out, bool* is_mx) {
  const std::vector<int64_t> shape = t.shape();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  out->resize(size_t(n));
  *is_mx = t.type == io::kGgmlMxfp4;
  if (*is_mx) {
    MxTensor m;
    if (std::string e = io::load_gguf_mxfp4(t, &m); !e.empty()) return e;
    return mx::cpu::dequantize(m, DType::kF32, out->data());
  }
  const DType dtype = t.type == io::kGgmlF32   ? DType::kF32
                      : t.type == io::kGgmlF16 ? DType::kF16
                                               : DType::kBF16;
  for (int64_t i = 0; i < n; ++i) (*out)[size_t(i)] = load_as_float(t.bytes.data(), dtype, i);
  return "";
}

std::string check_tensor(const io::GgufFile& file, const GgufModelTensor& want) {
  const io::GgufTensor* t = file.find_tensor(want.name);
  if (t == nullptr) return cat("tensor ", want.name, " is missing");
  if (t->shape() != want.shape) {
    return cat("tensor ", want.name, " has shape ", format_shape(t->shape()), ", the model needs ",
               format_shape(want.shape));
  }
  if (t->type != io::kGgmlF32 && t->type != io::kGgmlF16 && t->type != io::kGgmlBF16 &&
      t->type != io::kGgmlMxfp4) {
    return cat("tensor ", want.name, " has ggml type ", t->type,
               "; mxkit reads F32, F16, BF16 and MXFP4");
  }
  if (t->type == io::kGgmlMxfp4 && want.shape.size() != 2) {
    return cat("tensor ", want.name, " is MXFP4; mxkit reads vectors as F32, F16 or BF16");
  }
  return "";
}

}  // namespace

std::vector<GgufModelTensor> gguf_model_tensors(const ModelConfig& config) {
  return config.arch == Arch::kLlama ? llama_tensors(config) : gpt2_tensors(config);
}

std::vector<io::GgufKv> gguf_model_kvs(const ModelConfig& c) {
  const auto u32 = [](int64_t v) { return uint32_t(v); };
  std::vector<io::GgufKv> kvs;
  kvs.push_back(gguf_kv("general.architecture", std::string(arch_name(c.arch))));
  kvs.push_back(gguf_kv(arch_key(c, "context_length"), u32(c.seq_len)));
  kvs.push_back(gguf_kv(arch_key(c, "embedding_length"), u32(c.dim)));
  kvs.push_back(gguf_kv(arch_key(c, "block_count"), u32(c.n_layers)));
  kvs.push_back(gguf_kv(arch_key(c, "feed_forward_length"), u32(c.hidden)));
  kvs.push_back(gguf_kv(arch_key(c, "attention.head_count"), u32(c.n_heads)));
  if (c.arch == Arch::kLlama) {
    kvs.push_back(gguf_kv(arch_key(c, "attention.head_count_kv"), u32(c.n_kv_heads)));
    kvs.push_back(gguf_kv(arch_key(c, "attention.layer_norm_rms_epsilon"), float(kNormEpsilon)));
    kvs.push_back(gguf_kv(arch_key(c, "rope.dimension_count"), u32(c.head_size())));
    kvs.push_back(gguf_kv(arch_key(c, "rope.freq_base"), float(kRopeBase)));
    kvs.push_back(gguf_kv(arch_key(c, "vocab_size"), u32(c.vocab)));
  } else {
    kvs.push_back(gguf_kv(arch_key(c, "attention.layer_norm_epsilon"), float(kNormEpsilon)));
  }
  return kvs;
}

std::vector<float> gather_gguf_tensor(const Params& params, const GgufModelTensor& t) {
  std::vector<float> out;
  for (const std::string& name : t.params) {
    const ParamView* v = params.find(name);
    const float* p = params.data() + v->offset;
    out.insert(out.end(), p, p + v->size);
  }
  return out;
}

std::string config_from_gguf(const io::GgufFile& file, ModelConfig* out) {
  std::string arch;
  if (std::string e = io::read_gguf_string(file, "general.architecture", false, &arch);
      !e.empty()) {
    return e;
  }
  if (arch.empty()) {
    return "a GGUF tensor container, not a model: general.architecture is missing";
  }
  const std::optional<Arch> parsed = parse_arch(arch);
  if (!parsed)
    return cat("general.architecture is '", io::one_line(arch), "'; mxkit runs 'llama' and 'gpt2'");
  ModelConfig c;
  c.arch = *parsed;
  for (auto [name, field] : {std::pair{"context_length", &c.seq_len},
                             {"embedding_length", &c.dim},
                             {"block_count", &c.n_layers},
                             {"feed_forward_length", &c.hidden},
                             {"attention.head_count", &c.n_heads}}) {
    if (std::string e = read_count(file, arch_key(c, name), true, field); !e.empty()) return e;
  }
  c.n_kv_heads = c.n_heads;
  if (c.arch == Arch::kLlama) {
    if (std::string e =
            read_count(file, arch_key(c, "attention.head_count_kv"), false, &c.n_kv_heads);
        !e.empty()) {
      return e;
    }
  }
  if (c.seq_len > kMaxContext) {
    return cat(arch_key(c, "context_length"), " is ", c.seq_len, ", beyond mxkit's ", kMaxContext);
  }
  // Every block has at least 9 tensors: the layer count is bounded by the file.
  const int64_t held = int64_t(file.tensors().size());
  if (c.n_layers > held / 9) {
    return cat(arch_key(c, "block_count"), " is ", c.n_layers, ", but the file has only ", held,
               " tensors");
  }
  const io::GgufTensor* embd = file.find_tensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return "tensor token_embd.weight is missing or not a matrix";
  }
  c.vocab = embd->dims[1];
  c.tied = file.find_tensor("output.weight") == nullptr;
  if (std::string e = validate(c); !e.empty()) return cat("model config: ", e);
  if (std::string e = check_fixed_hyperparameters(file, c); !e.empty()) return e;
  *out = c;
  return "";
}

std::string load_gguf_model(const io::GgufFile& file, const std::string& path, LoadedModel* out,
                            std::unique_ptr<Backend> backend) {
  ModelConfig config;
  if (std::string e = config_from_gguf(file, &config); !e.empty()) return e;
  const std::vector<GgufModelTensor> layout = gguf_model_tensors(config);
  for (const GgufModelTensor& t : layout) {
    if (std::string e = check_tensor(file, t); !e.empty()) return e;
  }
  auto model = std::make_unique<Model>(config, std::move(backend));
  Params& params = model->params();
  std::map<std::string, QuantSpec> stored_mx;
  std::vector<float> values;
  for (const GgufModelTensor& t : layout) {
    bool is_mx = false;
    if (std::string e = decode_tensor(*file.find_tensor(t.name), &values, &is_mx); !e.empty()) {
      return cat("tensor ", t.name, ": ", e);
    }
    size_t at = 0;
    for (const std::string& name : t.params) {
      const ParamView* v = params.find(name);
      std::copy_n(values.begin() + at, v->size, params.data() + v->offset);
      at += size_t(v->size);
      if (is_mx) stored_mx[name] = mxfp4_rowwise_spec();
    }
  }
  model->upload_params();
  out->model = std::move(model);
  out->stored_mx = std::move(stored_mx);
  out->kind = "gguf";
  out->tokenizer = file.find_kv("tokenizer.ggml.model") != nullptr ? path : "";
  return "";
}

}  // namespace mx::nn
