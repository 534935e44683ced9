#include "mx/nn/model.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mx/core/rounding.h"
#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/cpu/matmul.h"

namespace mx::nn {

using io::cat;

// Saved activations of one block (shapes for N = B * T tokens).
struct LayerActs {
  std::vector<float> ln1, ln1_mean, ln1_rstd;  // [N, C], [N], [N]
  std::vector<float> q, k, v;                  // [N, nh * hs], [N, nkv * hs] (after RoPE)
  std::vector<float> att;                      // [B, nh, T, T]
  std::vector<float> atty, attproj, res_att;   // [N, C]
  std::vector<float> ln2, ln2_mean, ln2_rstd;  // [N, C], [N], [N]
  std::vector<float> fc, up, act;              // [N, H] (fc: GPT-2 c_fc / Llama gate)
  std::vector<float> proj, res_out;            // [N, C]
};

struct Model::Acts {
  std::vector<float> encoded;                       // [N, C]
  std::vector<LayerActs> layers;                    // [L]
  std::vector<float> lnf, lnf_mean, lnf_rstd;       // [N, C], [N], [N]
  std::vector<float> logits, probs, losses;         // [N, V], [N, V], [N]
  std::vector<float> dres, dln, datty, dq, dk, dv;  // backward scratch
  std::vector<float> dact, dfc, dup, dlogits;
};

namespace {

enum Site { kQ = 0, kK, kV, kAttention, kAttnOut, kFc, kUp, kProj };

float* at(float* base, int64_t offset) {
  return offset < 0 ? nullptr : base + offset;
}

}  // namespace

Model::Model(const ModelConfig& config, std::unique_ptr<Backend> backend)
    : config_(config), params_(config), backend_(std::move(backend)) {
  if (backend_ == nullptr) backend_ = std::make_unique<CpuBackend>();
}

Model::~Model() = default;

namespace {

struct Sized {
  std::vector<float>* buffer;
  double count;
};

// Every activation buffer with its size for b sequences of t tokens: what reserve allocates and
// what activation_bytes counts, from one list so that the two cannot disagree.
std::vector<Sized> activation_buffers(const ModelConfig& c, double b, double t, Model::Acts& a) {
  const double n = b * t, C = double(c.dim), H = double(c.hidden), V = double(c.vocab);
  const double q = double(c.n_heads * c.head_size()), kv = double(c.n_kv_heads * c.head_size());
  std::vector<Sized> list = {{&a.encoded, n * C}, {&a.lnf, n * C},    {&a.lnf_mean, n},
                             {&a.lnf_rstd, n},    {&a.logits, n * V}, {&a.probs, n * V},
                             {&a.losses, n},      {&a.dres, n * C},   {&a.dln, n * C},
                             {&a.datty, n * C},   {&a.dq, n * q},     {&a.dk, n * kv},
                             {&a.dv, n * kv},     {&a.dact, n * H},   {&a.dfc, n * H},
                             {&a.dup, n * H},     {&a.dlogits, n * V}};
  for (LayerActs& l : a.layers) {
    for (auto* v : {&l.ln1, &l.atty, &l.attproj, &l.res_att, &l.ln2, &l.proj, &l.res_out}) {
      list.push_back({v, n * C});
    }
    for (auto* v : {&l.ln1_mean, &l.ln1_rstd, &l.ln2_mean, &l.ln2_rstd}) list.push_back({v, n});
    list.push_back({&l.q, n * q});
    list.push_back({&l.k, n * kv});
    list.push_back({&l.v, n * kv});
    list.push_back({&l.att, b * double(c.n_heads) * t * t});
    list.push_back({&l.fc, n * H});
    list.push_back({&l.act, n * H});
    list.push_back({&l.up, c.arch == Arch::kLlama ? n * H : 0.0});
  }
  return list;
}

}  // namespace

double Model::activation_bytes(const ModelConfig& config, int64_t b, int64_t t) {
  Acts a;
  a.layers.resize(size_t(config.n_layers));
  double floats = 0;
  for (const Sized& s : activation_buffers(config, double(b), double(t), a)) floats += s.count;
  return floats * sizeof(float);
}

double Model::training_bytes(const ModelConfig& config, int64_t b, int64_t t) {
  const Params shapes(config, /*allocate=*/false);
  // Weights, gradients and the two AdamW moments, each one float per parameter.
  return 4.0 * double(shapes.count()) * sizeof(float) + activation_bytes(config, b, t);
}

std::string Model::reserve(int64_t b, int64_t t) {
  if (b < 1 || t < 1 || t > config_.seq_len) {
    return cat("a pass of ", b, " x ", t, " tokens does not fit this model (context ",
               config_.seq_len, ")");
  }
  if (acts_ != nullptr && b <= cap_b_ && t <= cap_t_) return "";
  const int64_t new_b = std::max(b, cap_b_), new_t = std::max(t, cap_t_);
  acts_.reset();  // the old buffers go before the new ones are counted against the budget
  cap_b_ = cap_t_ = 0;
  if (std::string e = io::check_memory(activation_bytes(config_, new_b, new_t),
                                       cat("a pass of ", new_b, " x ", new_t, " tokens"));
      !e.empty()) {
    return e;
  }
  auto acts = std::make_unique<Acts>();
  acts->layers.resize(size_t(config_.n_layers));
  for (const Sized& s : activation_buffers(config_, double(new_b), double(new_t), *acts)) {
    s.buffer->resize(size_t(s.count));
  }
  acts_ = std::move(acts);
  cap_b_ = new_b, cap_t_ = new_t;
  return "";
}

void Model::layer_forward(int64_t l, const float* x) {
  Backend& be = *backend_;
  LayerActs& a = acts_->layers[l];
  const LayerOffsets& o = params_.layers()[l];
  float* p = params_.data();
  const int64_t n = b_ * t_, C = config_.dim, H = config_.hidden, hs = config_.head_size();
  const int64_t nh = config_.n_heads, nkv = config_.n_kv_heads;
  const bool bf16 = recipe_.bf16_vector_ops, llama = config_.arch == Arch::kLlama;
  auto stream = [&](int site) { return cpu::stream_id(step_, int(l), site); };
  auto norm = [&](float* out, float* mean, float* rstd, const float* in, int64_t w, int64_t b) {
    if (llama) {
      be.rmsnorm_forward(out, rstd, in, at(p, w), n, C, bf16);
    } else {
      be.layernorm_forward(out, mean, rstd, in, at(p, w), at(p, b), n, C, bf16);
    }
  };
  norm(a.ln1.data(), a.ln1_mean.data(), a.ln1_rstd.data(), x, o.ln1_w, o.ln1_b);
  be.matmul_forward(a.q.data(), a.ln1.data(), at(p, o.wq), at(p, o.bq), n, C, nh * hs, recipe_,
                    stream(kQ));
  be.matmul_forward(a.k.data(), a.ln1.data(), at(p, o.wk), at(p, o.bk), n, C, nkv * hs, recipe_,
                    stream(kK));
  be.matmul_forward(a.v.data(), a.ln1.data(), at(p, o.wv), at(p, o.bv), n, C, nkv * hs, recipe_,
                    stream(kV));
  if (llama) {
    be.rope_forward(a.q.data(), n, t_, nh, hs, bf16);
    be.rope_forward(a.k.data(), n, t_, nkv, hs, bf16);
  }
  const AttentionShape shape{b_, t_, nh, nkv, hs};
  be.attention_forward(a.atty.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), shape,
                       recipe_, stream(kAttention));
  be.matmul_forward(a.attproj.data(), a.atty.data(), at(p, o.wo), at(p, o.bo), n, C, C, recipe_,
                    stream(kAttnOut));
  be.residual_forward(a.res_att.data(), x, a.attproj.data(), n * C, bf16);
  norm(a.ln2.data(), a.ln2_mean.data(), a.ln2_rstd.data(), a.res_att.data(), o.ln2_w, o.ln2_b);
  be.matmul_forward(a.fc.data(), a.ln2.data(), at(p, o.fc), at(p, o.fc_b), n, C, H, recipe_,
                    stream(kFc));
  if (llama) {
    be.matmul_forward(a.up.data(), a.ln2.data(), at(p, o.up), nullptr, n, C, H, recipe_,
                      stream(kUp));
    be.swiglu_forward(a.act.data(), a.fc.data(), a.up.data(), n * H, bf16);
  } else {
    be.gelu_forward(a.act.data(), a.fc.data(), n * H, bf16);
  }
  be.matmul_forward(a.proj.data(), a.act.data(), at(p, o.proj), at(p, o.proj_b), n, H, C, recipe_,
                    stream(kProj));
  be.residual_forward(a.res_out.data(), a.res_att.data(), a.proj.data(), n * C, bf16);
}

std::string Model::forward(const uint32_t* tokens, const uint32_t* targets, int64_t b, int64_t t,
                           float* loss) {
  has_targets_ = false;
  if (std::string e = reserve(b, t); !e.empty()) return e;
  const int64_t n = b * t, C = config_.dim, V = config_.vocab;
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] >= V || (targets != nullptr && targets[i] >= V)) {
      return cat("token id ", std::max(tokens[i], targets != nullptr ? targets[i] : 0u),
                 " is not below the model's vocabulary of ", V);
    }
  }
  b_ = b, t_ = t;
  tokens_.assign(tokens, tokens + n);
  has_targets_ = targets != nullptr;
  if (has_targets_) targets_.assign(targets, targets + n);
  Acts& a = *acts_;
  Backend& be = *backend_;
  float* p = params_.data();
  const bool llama = config_.arch == Arch::kLlama, bf16 = recipe_.bf16_vector_ops;
  be.embedding_forward(a.encoded.data(), tokens, at(p, params_.wte()), at(p, params_.wpe()), n, t,
                       C);
  const float* x = a.encoded.data();
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    layer_forward(l, x);
    x = a.layers[l].res_out.data();
  }
  if (llama) {
    be.rmsnorm_forward(a.lnf.data(), a.lnf_rstd.data(), x, at(p, params_.norm_w()), n, C, bf16);
  } else {
    be.layernorm_forward(a.lnf.data(), a.lnf_mean.data(), a.lnf_rstd.data(), x,
                         at(p, params_.norm_w()), at(p, params_.norm_b()), n, C, bf16);
  }
  be.matmul_forward(a.logits.data(), a.lnf.data(), at(p, params_.classifier()), nullptr, n, C, V,
                    recipe_, cpu::stream_id(step_, int(config_.n_layers), 0));
  const float mean =
      be.crossentropy_forward(a.probs.data(), a.losses.data(), a.logits.data(), targets, n, V);
  if (std::string e = be.take_error(); !e.empty()) {
    has_targets_ = false;
    return e;
  }
  if (loss != nullptr) *loss = mean;
  return "";
}

void Model::layer_backward(int64_t l, const float* x, float* dres) {
  Backend& be = *backend_;
  Acts& s = *acts_;
  LayerActs& a = s.layers[l];
  const LayerOffsets& o = params_.layers()[l];
  float* p = params_.data();
  float* g = params_.grad();
  const int64_t n = b_ * t_, C = config_.dim, H = config_.hidden, hs = config_.head_size();
  const int64_t nh = config_.n_heads, nkv = config_.n_kv_heads;
  const bool llama = config_.arch == Arch::kLlama;
  auto stream = [&](int site) { return cpu::stream_id(step_, int(l), site); };
  auto norm_back = [&](const float* in, const float* mean, const float* rstd, int64_t w,
                       int64_t b) {
    if (llama) {
      be.rmsnorm_backward(dres, at(g, w), s.dln.data(), in, at(p, w), rstd, n, C);
    } else {
      be.layernorm_backward(dres, at(g, w), at(g, b), s.dln.data(), in, at(p, w), mean, rstd, n, C);
    }
  };
  // MLP: dres is d(res_out) = d(proj) and (so far) d(res_att).
  be.zero(s.dact.data(), n * H);
  be.matmul_backward(s.dact.data(), at(g, o.proj), at(g, o.proj_b), dres, a.act.data(),
                     at(p, o.proj), n, H, C, recipe_, stream(kProj));
  be.zero(s.dfc.data(), n * H);
  be.zero(s.dln.data(), n * C);
  if (llama) {
    be.zero(s.dup.data(), n * H);
    be.swiglu_backward(s.dfc.data(), s.dup.data(), s.dact.data(), a.fc.data(), a.up.data(), n * H);
    be.matmul_backward(s.dln.data(), at(g, o.up), nullptr, s.dup.data(), a.ln2.data(), at(p, o.up),
                       n, C, H, recipe_, stream(kUp));
  } else {
    be.gelu_backward(s.dfc.data(), a.fc.data(), s.dact.data(), n * H);
  }
  be.matmul_backward(s.dln.data(), at(g, o.fc), at(g, o.fc_b), s.dfc.data(), a.ln2.data(),
                     at(p, o.fc), n, C, H, recipe_, stream(kFc));
  norm_back(a.res_att.data(), a.ln2_mean.data(), a.ln2_rstd.data(), o.ln2_w, o.ln2_b);
  // Attention: dres is now d(res_att) = d(attproj) and (so far) d(x).
  be.zero(s.datty.data(), n * C);
  be.matmul_backward(s.datty.data(), at(g, o.wo), at(g, o.bo), dres, a.atty.data(), at(p, o.wo), n,
                     C, C, recipe_, stream(kAttnOut));
  be.zero(s.dq.data(), n * nh * hs);
  be.zero(s.dk.data(), n * nkv * hs);
  be.zero(s.dv.data(), n * nkv * hs);
  const AttentionShape shape{b_, t_, nh, nkv, hs};
  be.attention_backward(s.dq.data(), s.dk.data(), s.dv.data(), s.datty.data(), a.q.data(),
                        a.k.data(), a.v.data(), a.att.data(), shape, recipe_, stream(kAttention));
  if (llama) {
    be.rope_backward(s.dq.data(), n, t_, nh, hs);
    be.rope_backward(s.dk.data(), n, t_, nkv, hs);
  }
  be.zero(s.dln.data(), n * C);
  be.matmul_backward(s.dln.data(), at(g, o.wq), at(g, o.bq), s.dq.data(), a.ln1.data(), at(p, o.wq),
                     n, C, nh * hs, recipe_, stream(kQ));
  be.matmul_backward(s.dln.data(), at(g, o.wk), at(g, o.bk), s.dk.data(), a.ln1.data(), at(p, o.wk),
                     n, C, nkv * hs, recipe_, stream(kK));
  be.matmul_backward(s.dln.data(), at(g, o.wv), at(g, o.bv), s.dv.data(), a.ln1.data(), at(p, o.wv),
                     n, C, nkv * hs, recipe_, stream(kV));
  norm_back(x, a.ln1_mean.data(), a.ln1_rstd.data(), o.ln1_w, o.ln1_b);
}

std::string Model::backward() {
  if (acts_ == nullptr || !has_targets_) return "backward needs a forward pass with targets";
  Acts& a = *acts_;
  Backend& be = *backend_;
  float* p = params_.data();
  float* g = params_.grad();
  const int64_t n = b_ * t_, C = config_.dim, V = config_.vocab, L = config_.n_layers;
  be.zero(a.dlogits.data(), n * V);
  be.crossentropy_backward(a.dlogits.data(), a.probs.data(), targets_.data(), n, V);
  be.zero(a.dln.data(), n * C);
  be.matmul_backward(a.dln.data(), at(g, params_.classifier()), nullptr, a.dlogits.data(),
                     a.lnf.data(), at(p, params_.classifier()), n, C, V, recipe_,
                     cpu::stream_id(step_, int(L), 0));
  be.zero(a.dres.data(), n * C);
  const float* x = a.layers[L - 1].res_out.data();
  if (config_.arch == Arch::kLlama) {
    be.rmsnorm_backward(a.dres.data(), at(g, params_.norm_w()), a.dln.data(), x,
                        at(p, params_.norm_w()), a.lnf_rstd.data(), n, C);
  } else {
    be.layernorm_backward(a.dres.data(), at(g, params_.norm_w()), at(g, params_.norm_b()),
                          a.dln.data(), x, at(p, params_.norm_w()), a.lnf_mean.data(),
                          a.lnf_rstd.data(), n, C);
  }
  for (int64_t l = L - 1; l >= 0; --l) {
    const float* in = l == 0 ? a.encoded.data() : a.layers[l - 1].res_out.data();
    layer_backward(l, in, a.dres.data());
  }
  be.embedding_backward(at(g, params_.wte()), at(g, params_.wpe()), a.dres.data(), tokens_.data(),
                        n, t_, C);
  return be.take_error();
}

void Model::zero_grad() {
  backend_->zero(params_.grad(), params_.size());
}

const float* Model::logits() const {
  return acts_ ? acts_->logits.data() : nullptr;
}
const float* Model::probs() const {
  return acts_ ? acts_->probs.data() : nullptr;
}

uint32_t sample_token(const float* logits, int64_t vocab, int top_k, float temperature,
                      uint64_t* rng_state) {
  std::vector<int64_t> order(vocab);
  for (int64_t i = 0; i < vocab; ++i) order[i] = i;
  // Largest first; ties by lower id, so the choice is deterministic.
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return logits[x] > logits[y]; });
  if (temperature <= 0.0f) return uint32_t(order[0]);
  const int64_t k = top_k <= 0 || top_k >= vocab ? vocab : top_k;
  std::vector<double> w(k);
  double sum = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    w[i] = std::exp(double(logits[order[i]] - logits[order[0]]) / temperature);
    sum += w[i];
  }
  *rng_state += 0x9E3779B97F4A7C15ull;
  const double u = double(splitmix64_mix(*rng_state) >> 11) * 0x1.0p-53 * sum;
  double c = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    c += w[i];
    if (u < c) return uint32_t(order[i]);
  }
  return uint32_t(order[k - 1]);
}

}  // namespace mx::nn
