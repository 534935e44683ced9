// The shape of a model: GPT-2 (learned positions, LayerNorm, GELU, biases) or Llama (RoPE,
// RMSNorm, SwiGLU, grouped-query attention, no biases).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mx::nn {

enum class Arch { kGpt2, kLlama };

// What every model runs with, whatever its file says (nn/cpu/norm.cpp, the RoPE of
// nn/cpu/activations.cpp and the CUDA kernels): readers refuse files that ask for others.
inline constexpr double kNormEpsilon = 1e-5;
inline constexpr double kRopeBase = 10000.0;

std::string_view arch_name(Arch arch);
std::optional<Arch> parse_arch(std::string_view name);  // "gpt2" or "llama"

struct ModelConfig {
  Arch arch = Arch::kGpt2;
  int64_t vocab = 256;
  int64_t dim = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  // == n_heads for GPT-2
  int64_t hidden = 256;    // MLP width
  int64_t seq_len = 64;    // the longest sequence (GPT-2: rows of the position table)
  bool tied = true;        // classifier shares the token embedding

  int64_t head_size() const { return dim / n_heads; }
};

// "tiny" (2 layers, dim 64, 4 heads, ctx 64), "small" (4 layers, dim 128, 4 heads, ctx 128),
// both with byte vocab 256; and, GPT-2 only, with ctx 1024 and vocab 50257, the four sizes of
// the GPT-2 paper (Radford et al. 2019, table 2): "gpt2-124m" (12 layers, dim 768, 12 heads),
// "gpt2-355m" (24, 1024, 16), "gpt2-774m" (36, 1280, 20) and "gpt2-1558m" (48, 1600, 25);
// and "gpt2-20m" (8, 256, 4), near the MX paper's smallest GPT (about 20M parameters, the
// token table included). MLP width and key/value heads follow with_shape.
std::vector<std::string_view> model_preset_names();
std::string model_preset_list();  // the names, comma-separated
std::optional<ModelConfig> model_preset(std::string_view name, Arch arch);

// The config with another depth, width and head count, and the MLP width and key/value heads
// that go with them: GPT-2 MLPs are 4 * dim wide; Llama's are 2/3 of that rounded up to a
// multiple of 4 (172 for dim 64), with n_kv_heads = n_heads / 2 (at least 1).
ModelConfig with_shape(ModelConfig config, int64_t n_layers, int64_t dim, int64_t n_heads);

// "" when the config is usable, else the reason.
std::string validate(const ModelConfig& config);

std::string describe(const ModelConfig& config);

}  // namespace mx::nn
