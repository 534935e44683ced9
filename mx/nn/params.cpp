#include "mx/nn/params.h"

#include <algorithm>
#include <cmath>
#include <new>

#include "mx/core/rounding.h"
#include "mx/kernels/cpu/parallel.h"

namespace mx::nn {
namespace {

std::string join(const std::string& prefix, int64_t layer, const char* suffix) {
  std::string s = prefix;
  s += std::to_string(layer);
  s += suffix;
  return s;
}

}  // namespace

int64_t Params::add(const std::string& name, std::vector<int64_t> shape, ParamKind kind) {
  ParamView v;
  v.name = name;
  v.size = 1;
  for (int64_t d : shape) v.size *= d;
  v.shape = std::move(shape);
  v.kind = kind;
  v.offset = views_.empty() ? 0 : views_.back().offset + views_.back().size;
  views_.push_back(v);
  return v.offset;
}

Params::Params(const ModelConfig& c, bool allocate) : config_(c) {
  const int64_t C = c.dim, H = c.hidden, hs = c.head_size(), V = c.vocab;
  const int64_t kv = c.n_kv_heads * hs;
  const bool gpt2 = c.arch == Arch::kGpt2;
  const std::string p = gpt2 ? "transformer.h." : "model.layers.";
  wte_ = add(gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight", {V, C},
             ParamKind::kEmbedding);
  if (gpt2) wpe_ = add("transformer.wpe.weight", {c.seq_len, C}, ParamKind::kEmbedding);
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerOffsets o;
    auto matrix = [&](const char* s, int64_t rows, int64_t cols) {
      return add(join(p, i, s), {rows, cols}, ParamKind::kMatrix);
    };
    auto vec = [&](const char* s, int64_t n, ParamKind kind) {
      return add(join(p, i, s), {n}, kind);
    };
    if (gpt2) {
      o.ln1_w = vec(".ln_1.weight", C, ParamKind::kNorm);
      o.ln1_b = vec(".ln_1.bias", C, ParamKind::kBias);
      o.wq = matrix(".attn.q_proj.weight", C, C);
      o.bq = vec(".attn.q_proj.bias", C, ParamKind::kBias);
      o.wk = matrix(".attn.k_proj.weight", C, C);
      o.bk = vec(".attn.k_proj.bias", C, ParamKind::kBias);
      o.wv = matrix(".attn.v_proj.weight", C, C);
      o.bv = vec(".attn.v_proj.bias", C, ParamKind::kBias);
      o.wo = matrix(".attn.c_proj.weight", C, C);
      o.bo = vec(".attn.c_proj.bias", C, ParamKind::kBias);
      o.ln2_w = vec(".ln_2.weight", C, ParamKind::kNorm);
      o.ln2_b = vec(".ln_2.bias", C, ParamKind::kBias);
      o.fc = matrix(".mlp.c_fc.weight", H, C);
      o.fc_b = vec(".mlp.c_fc.bias", H, ParamKind::kBias);
      o.proj = matrix(".mlp.c_proj.weight", C, H);
      o.proj_b = vec(".mlp.c_proj.bias", C, ParamKind::kBias);
    } else {
      o.ln1_w = vec(".input_layernorm.weight", C, ParamKind::kNorm);
      o.wq = matrix(".self_attn.q_proj.weight", C, C);
      o.wk = matrix(".self_attn.k_proj.weight", kv, C);
      o.wv = matrix(".self_attn.v_proj.weight", kv, C);
      o.wo = matrix(".self_attn.o_proj.weight", C, C);
      o.ln2_w = vec(".post_attention_layernorm.weight", C, ParamKind::kNorm);
      o.fc = matrix(".mlp.gate_proj.weight", H, C);
      o.up = matrix(".mlp.up_proj.weight", H, C);
      o.proj = matrix(".mlp.down_proj.weight", C, H);
    }
    layers_.push_back(o);
  }
  norm_w_ = add(gpt2 ? "transformer.ln_f.weight" : "model.norm.weight", {C}, ParamKind::kNorm);
  if (gpt2) norm_b_ = add("transformer.ln_f.bias", {C}, ParamKind::kBias);
  cls_ = c.tied ? wte_ : add("lm_head.weight", {V, C}, ParamKind::kMatrix);
  if (allocate) data_ = ZeroedFloats(count()), grad_ = ZeroedFloats(count());
}

ZeroedFloats::ZeroedFloats(int64_t n) : n_(n) {
  if (n == 0) return;
  p_.reset(static_cast<float*>(std::calloc(size_t(n), sizeof(float))));
  if (p_ == nullptr) throw std::bad_alloc();
}

const ParamView* Params::find(const std::string& name) const {
  for (const ParamView& v : views_) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

const ParamView* Params::find_at(int64_t offset) const {
  for (const ParamView& v : views_) {
    if (v.offset == offset) return &v;
  }
  return nullptr;
}

float* Params::get(const std::string& name) {
  const ParamView* v = find(name);
  return v != nullptr ? data_.data() + v->offset : nullptr;
}

float* Params::grad_of(const std::string& name) {
  const ParamView* v = find(name);
  return v != nullptr ? grad_.data() + v->offset : nullptr;
}

void Params::init(uint64_t seed) {
  // The k-th drawn element overall takes draws 2k + 1 and 2k + 2 of one counter-based stream,
  // so any split of the work gives the same values: the views are cut into pieces that threads
  // fill in any order.
  struct Piece {
    float* p;
    int64_t size;
    uint64_t counter;  // draws before the piece's first element
    double std;
  };
  constexpr int64_t kPiece = int64_t{1} << 20;
  std::vector<Piece> pieces;
  uint64_t counter = 0;
  const double residual_std = 0.02 / std::sqrt(2.0 * double(config_.n_layers));
  for (const ParamView& v : views_) {
    float* p = data_.data() + v.offset;
    if (v.kind == ParamKind::kNorm || v.kind == ParamKind::kBias) {
      const float fill = v.kind == ParamKind::kNorm ? 1.0f : 0.0f;
      for (int64_t i = 0; i < v.size; ++i) p[i] = fill;
      continue;
    }
    bool residual = false;
    for (const LayerOffsets& o : layers_) residual |= v.offset == o.wo || v.offset == o.proj;
    const double std = residual ? residual_std : 0.02;
    for (int64_t first = 0; first < v.size; first += kPiece) {
      pieces.push_back(
          {p + first, std::min(kPiece, v.size - first), counter + 2 * uint64_t(first), std});
    }
    counter += 2 * uint64_t(v.size);
  }
  cpu::parallel_for(int64_t(pieces.size()), 1, 0, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const Piece& piece = pieces[size_t(k)];
      uint64_t c = piece.counter;
      auto uniform = [&]() {
        const uint64_t bits = splitmix64_mix(seed + (++c) * 0x9E3779B97F4A7C15ull);
        return (double(bits >> 11) + 0.5) * 0x1.0p-53;  // in (0, 1)
      };
      for (int64_t i = 0; i < piece.size; ++i) {
        const double r = std::sqrt(-2.0 * std::log(uniform()));
        piece.p[i] = float(piece.std * r * std::cos(2.0 * 3.141592653589793 * uniform()));
      }
    }
  });
}

}  // namespace mx::nn
