#include "mx/nn/model_config.h"

#include <sstream>

namespace mx::nn {

std::string_view arch_name(Arch arch) {
  return arch == Arch::kGpt2 ? "gpt2" : "llama";
}

std::optional<Arch> parse_arch(std::string_view name) {
  if (name == "gpt2") return Arch::kGpt2;
  if (name == "llama") return Arch::kLlama;
  return std::nullopt;
}

namespace {

struct Preset {
  std::string_view name;
  int64_t layers, dim, heads, seq_len, vocab;
  bool gpt2_only;
};

constexpr Preset kPresets[] = {
    {"tiny", 2, 64, 4, 64, 256, false},
    {"small", 4, 128, 4, 128, 256, false},
    {"gpt2-20m", 8, 256, 4, 1024, 50257, true},
    {"gpt2-124m", 12, 768, 12, 1024, 50257, true},
    {"gpt2-355m", 24, 1024, 16, 1024, 50257, true},
    {"gpt2-774m", 36, 1280, 20, 1024, 50257, true},
    {"gpt2-1558m", 48, 1600, 25, 1024, 50257, true},
};

}  // namespace

std::vector<std::string_view> model_preset_names() {
  std::vector<std::string_view> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

std::string model_preset_list() {
  std::string names;
  for (const Preset& p : kPresets) {
    if (!names.empty()) names += ", ";
    names += p.name;
  }
  return names;
}

ModelConfig with_shape(ModelConfig c, int64_t n_layers, int64_t dim, int64_t n_heads) {
  c.n_layers = n_layers, c.dim = dim, c.n_heads = n_heads;
  if (c.arch == Arch::kGpt2) {
    c.n_kv_heads = c.n_heads;
    c.hidden = 4 * c.dim;
  } else {
    c.n_kv_heads = c.n_heads > 1 ? c.n_heads / 2 : 1;
    c.hidden = (8 * c.dim / 3 + 3) / 4 * 4;
  }
  return c;
}

std::optional<ModelConfig> model_preset(std::string_view name, Arch arch) {
  for (const Preset& p : kPresets) {
    if (p.name != name || (p.gpt2_only && arch != Arch::kGpt2)) continue;
    ModelConfig c;
    c.arch = arch;
    c.seq_len = p.seq_len;
    c.vocab = p.vocab;
    return with_shape(c, p.layers, p.dim, p.heads);
  }
  return std::nullopt;
}

std::string validate(const ModelConfig& c) {
  if (c.vocab < 1 || c.dim < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 ||
      c.hidden < 1 || c.seq_len < 1) {
    return "model sizes must be positive";
  }
  // Far beyond any model this engine runs, and small enough that every size computed from a
  // config fits in 64 bits: a damaged number is refused here, before anything is allocated.
  const std::pair<const char*, std::pair<int64_t, int64_t>> limits[] = {
      {"vocab", {c.vocab, int64_t{1} << 24}},       {"dim", {c.dim, int64_t{1} << 16}},
      {"n_layers", {c.n_layers, int64_t{1} << 12}}, {"n_heads", {c.n_heads, c.dim}},
      {"hidden", {c.hidden, int64_t{1} << 18}},     {"seq_len", {c.seq_len, int64_t{1} << 20}}};
  for (const auto& [name, value_limit] : limits) {
    if (value_limit.first > value_limit.second) {
      std::ostringstream s;
      s << name << " " << value_limit.first << " exceeds the limit of " << value_limit.second;
      return s.str();
    }
  }
  if (c.dim % c.n_heads != 0) return "dim must be a multiple of n_heads";
  if (c.n_heads % c.n_kv_heads != 0) return "n_heads must be a multiple of n_kv_heads";
  if (c.arch == Arch::kGpt2 && c.n_kv_heads != c.n_heads) return "GPT-2 has n_kv_heads = n_heads";
  if (c.arch == Arch::kLlama && c.head_size() % 2 != 0) return "RoPE needs an even head size";
  return "";
}

std::string describe(const ModelConfig& c) {
  std::ostringstream s;
  s << arch_name(c.arch) << " vocab=" << c.vocab << " dim=" << c.dim << " layers=" << c.n_layers
    << " heads=" << c.n_heads << " kv_heads=" << c.n_kv_heads << " hidden=" << c.hidden
    << " seq_len=" << c.seq_len << (c.tied ? " tied" : " untied");
  return s.str();
}

}  // namespace mx::nn
