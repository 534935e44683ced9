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

std::vector<std::string_view> model_preset_names() {
  return {"tiny", "small", "gpt2-124m"};
}

std::optional<ModelConfig> model_preset(std::string_view name, Arch arch) {
  ModelConfig c;
  c.arch = arch;
  if (name == "tiny") {
    c.n_layers = 2, c.dim = 64, c.n_heads = 4, c.seq_len = 64;
  } else if (name == "small") {
    c.n_layers = 4, c.dim = 128, c.n_heads = 4, c.seq_len = 128;
  } else if (name == "gpt2-124m" && arch == Arch::kGpt2) {
    c.n_layers = 12, c.dim = 768, c.n_heads = 12, c.seq_len = 1024, c.vocab = 50257;
  } else {
    return std::nullopt;
  }
  if (arch == Arch::kGpt2) {
    c.n_kv_heads = c.n_heads;
    c.hidden = 4 * c.dim;
  } else {
    c.n_kv_heads = c.n_heads / 2;
    c.hidden = (8 * c.dim / 3 + 3) / 4 * 4;
  }
  return c;
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
