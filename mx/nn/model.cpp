#include "mx/nn/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>

#include "mx/core/half.h"
#include "mx/core/rounding.h"
#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model_acts.h"

namespace mx::nn {

using io::cat;

namespace {

enum Site {
  kQ = int(LinearSite::kQ),
  kK = int(LinearSite::kK),
  kV = int(LinearSite::kV),
  kAttention = 3,
  kAttnOut = int(LinearSite::kAttnOut),
  kFc = int(LinearSite::kFc),
  kUp = int(LinearSite::kUp),
  kProj = int(LinearSite::kProj)
};

struct Sized {
  Buf* buffer;
  double count;
  bool f32;  // FP32 whatever the activation type (statistics, saved attention, losses)
};

// The room that product inputs carry for the backend's kept casts (Backend::input_kept_count),
// in elements: those of width dim (ln1, atty, ln2), of width hidden (act), and the classifier's
// (lnf, under its own recipe).
struct InputRoom {
  double dim = 0, hidden = 0, classifier = 0;
};

// Every activation buffer with its size for b sequences of t tokens: what reserve allocates and
// what activation_bytes counts, from one list so that the two cannot disagree. `saved` is the
// attention's saved state per layer.
std::vector<Sized> activation_buffers(const ModelConfig& c, double b, double t, double saved,
                                      const InputRoom& room, Model::Acts& a) {
  const double n = b * t, C = double(c.dim), H = double(c.hidden);
  // Layer-wise passes stop before the classifier and run no backward.
  const double V = a.one_block ? 0.0 : double(c.vocab), back = a.one_block ? 0.0 : 1.0;
  const double q = double(c.n_heads * c.head_size()), kv = double(c.n_kv_heads * c.head_size());
  std::vector<Sized> list = {
      {&a.encoded, n * C, false},      {&a.lnf, n * C + room.classifier, false},
      {&a.lnf_mean, n, true},          {&a.lnf_rstd, n, true},
      {&a.logits, n * V, false},       {&a.losses, n * back, true},
      {&a.dres, n * C * back, false},  {&a.dln, n * C * back, false},
      {&a.datty, n * C * back, false}, {&a.dq, n * q * back, false},
      {&a.dk, n * kv * back, false},   {&a.dv, n * kv * back, false},
      {&a.dact, n * H * back, false},  {&a.dfc, n * H * back, false},
      {&a.dup, n * H * back, false}};
  for (LayerActs& l : a.layers) {
    for (Buf* v : {&l.ln1, &l.atty, &l.ln2}) list.push_back({v, n * C + room.dim, false});
    for (Buf* v : {&l.res_att, &l.res_out}) list.push_back({v, n * C, false});
    for (Buf* v : {&l.ln1_mean, &l.ln1_rstd, &l.ln2_mean, &l.ln2_rstd})
      list.push_back({v, n, true});
    list.push_back({&l.q, n * q, false});
    list.push_back({&l.k, n * kv, false});
    list.push_back({&l.v, n * kv, false});
    list.push_back({&l.att_saved, saved, true});
    list.push_back({&l.fc, n * H, false});
    list.push_back({&l.act, n * H + room.hidden, false});
    list.push_back({&l.up, c.arch == Arch::kLlama ? n * H : 0.0, false});
  }
  return list;
}

// The attention state per layer, the largest any backend keeps (the CPU's probabilities, or a
// fused kernel's log-sum-exps and bfloat16 rows of head size): for estimates, in double.
double saved_estimate(const ModelConfig& c, int64_t b, int64_t t) {
  const double per_row = std::max(double(t), 1.0 + double(c.head_size()) / 2.0);
  return double(b) * double(c.n_heads) * double(t) * per_row;
}

}  // namespace

Model::Model(const ModelConfig& config, std::unique_ptr<Backend> backend)
    : config_(config), params_(config), backend_(std::move(backend)) {
  if (backend_ == nullptr) backend_ = std::make_unique<CpuBackend>();
  Backend& be = *backend_;
  if (be.host_visible()) {
    weights_ = be.wrap(params_.data(), BufType::kF32, params_.size());
    grads_ = be.wrap(params_.grad(), BufType::kF32, params_.size());
  } else {
    weights_ = be.alloc(BufType::kF32, params_.size());
    grads_ = be.alloc(BufType::kF32, params_.size());
    be.hold_weights(weights_);
  }
}

Model::~Model() = default;

void Model::upload_params() {
  if (!backend_->host_visible()) backend_->upload(weights_, params_.data());
}

void Model::download_params() {
  if (!backend_->host_visible()) backend_->download(params_.data(), weights_);
}

void Model::download_grads() {
  if (!backend_->host_visible()) backend_->download(params_.grad(), grads_);
}

double Model::activation_bytes(const ModelConfig& config, int64_t b, int64_t t) {
  Acts a;
  a.layers.resize(size_t(config.n_layers));
  double floats = 0;
  // Without room for kept casts: the CPU backend keeps none, and reserve leaves it out on a GPU
  // where it would not fit.
  for (const Sized& s :
       activation_buffers(config, double(b), double(t), saved_estimate(config, b, t), {}, a)) {
    floats += s.count;
  }
  return floats * sizeof(float);
}

double Model::training_bytes(const ModelConfig& config, int64_t b, int64_t t) {
  const Params shapes(config, /*allocate=*/false);
  // Weights, gradients and the two AdamW moments, each one float per parameter.
  return 4.0 * double(shapes.count()) * sizeof(float) + activation_bytes(config, b, t);
}

std::string Model::reserve(int64_t b, int64_t t) {
  return reserve_for(b, t, /*one_block=*/false);
}

LayerActs& Model::layer_acts(int64_t l) {
  return acts_->layers[acts_->one_block ? 0 : size_t(l)];
}

std::string Model::reserve_for(int64_t b, int64_t t, bool one_block) {
  if (b < 1 || t < 1 || t > config_.seq_len) {
    return cat("a pass of ", b, " x ", t, " tokens does not fit this model (context ",
               config_.seq_len, ")");
  }
  if (acts_ != nullptr && b <= cap_b_ && t <= cap_t_ && (one_block || !acts_->one_block)) {
    return "";
  }
  const int64_t new_b = std::max(b, cap_b_), new_t = std::max(t, cap_t_);
  Backend& be = *backend_;
  // The old buffers go before the new ones are counted against the budget.
  if (acts_ != nullptr) {
    for (const Sized& s : activation_buffers(config_, 0, 0, 0, {}, *acts_)) be.release(*s.buffer);
    be.release(acts_->tokens);
    be.release(acts_->targets);
    acts_.reset();
  }
  cap_b_ = cap_t_ = 0;
  reserved_bytes_ = 0;
  auto acts = std::make_unique<Acts>();
  acts->one_block = one_block;
  acts->layers.resize(one_block ? 1 : size_t(config_.n_layers));
  // Counted in double before anything is allocated, with this backend's types and saved state.
  const double saved = double(
      be.attn_saved_count({new_b, new_t, config_.n_heads, config_.n_kv_heads, config_.head_size()},
                          attention_recipe(recipe_)));
  // Layer-wise passes run no backward, so their inputs need no room.
  const int64_t rows = new_b * new_t;
  auto room = [&](int64_t k, const Recipe& r) {
    return one_block ? 0.0 : double(be.input_kept_count(rows, k, r));
  };
  const InputRoom input_room{room(config_.dim, recipe_), room(config_.hidden, recipe_),
                             room(config_.dim, classifier_recipe(recipe_))};
  auto bytes_of = [&](const std::vector<Sized>& list) {
    double bytes = 0;
    for (const Sized& s : list) {
      bytes += s.count * double(s.f32 ? 4 : buf_type_bytes(be.act_type()));
    }
    return bytes;
  };
  std::vector<Sized> buffers =
      activation_buffers(config_, double(new_b), double(new_t), saved, {}, *acts);
  double bytes = bytes_of(buffers);
  const double available = double(be.memory_available());
  // The room only spares the backward a cast of each input, so it must never be what a pass
  // runs out of memory for: it is taken where what stays free after it is at least its size
  // again (for the scratch that the products allocate later).
  std::vector<Sized> with_room =
      activation_buffers(config_, double(new_b), double(new_t), saved, input_room, *acts);
  if (const double bytes_with_room = bytes_of(with_room);
      bytes_with_room + (bytes_with_room - bytes) <= available) {
    buffers = std::move(with_room);
    bytes = bytes_with_room;
  }
  if (bytes > available) {
    return cat("a pass of ", new_b, " x ", new_t, " tokens needs ", io::format_bytes(bytes),
               ", more than the ", io::format_bytes(available), " available on ", be.name());
  }
  for (const Sized& s : buffers) {
    if (s.count == 0) continue;
    *s.buffer = be.alloc(s.f32 ? BufType::kF32 : be.act_type(), int64_t(s.count));
    if (s.buffer->empty()) return be.take_error();
  }
  acts->tokens = be.alloc(BufType::kU32, new_b * new_t);
  acts->targets = be.alloc(BufType::kU32, new_b * new_t);
  if (acts->tokens.empty() || acts->targets.empty()) return be.take_error();
  acts_ = std::move(acts);
  cap_b_ = new_b, cap_t_ = new_t;
  reserved_bytes_ = bytes;
  return "";
}

Buf Model::product_input(Buf x, int64_t width) const {
  return pass_.training ? x : x.at(0, b_ * t_ * width);
}

void Model::layer_forward(int64_t l, Buf x, bool use_cache, unsigned parts) {
  Backend& be = *backend_;
  LayerActs& a = layer_acts(l);
  const LayerOffsets& o = params_.layers()[l];
  const Buf& p = weights_;
  const int64_t n = b_ * t_, C = config_.dim, H = config_.hidden, hs = config_.head_size();
  const int64_t nh = config_.n_heads, nkv = config_.n_kv_heads;
  const bool bf16 = recipe_.bf16_vector_ops, llama = config_.arch == Arch::kLlama;
  auto key = [&](int site) { return SrKey{step_, int32_t(l), site}; };
  auto vec = [&](int64_t offset) { return p.at(offset, C); };
  auto norm = [&](Buf out, Buf mean, Buf rstd, Buf in, int64_t w, int64_t b) {
    if (llama) {
      be.rmsnorm_forward(out, rstd, in, vec(w), n, C, bf16);
    } else {
      be.layernorm_forward(out, mean, rstd, in, vec(w), vec(b), n, C, bf16);
    }
  };
  if (parts & kPartNorm1) norm(a.ln1, a.ln1_mean, a.ln1_rstd, x, o.ln1_w, o.ln1_b);
  if (parts & kPartAttention) {
    // With the cache, this pass's keys and values are written as its next rows, and attention
    // reads all of its rows so far.
    const int64_t kv = nkv * hs, past = use_cache ? cached_ : 0;
    const Buf k = use_cache ? k_cache_[l].at(past * kv, n * kv) : a.k;
    const Buf v = use_cache ? v_cache_[l].at(past * kv, n * kv) : a.v;
    const Backend::Product qkv[] = {
        {a.q, p.at(o.wq, nh * hs * C), p.at(o.bq, nh * hs), nh * hs, key(kQ)},
        {k, p.at(o.wk, kv * C), p.at(o.bk, kv), kv, key(kK)},
        {v, p.at(o.wv, kv * C), p.at(o.bv, kv), kv, key(kV)}};
    be.matmuls_forward(qkv, product_input(a.ln1, C), n, C, recipe_);
    if (llama) {
      be.rope_forward(a.q, n, t_, nh, hs, past, bf16);
      be.rope_forward(k, n, t_, nkv, hs, past, bf16);
    }
    const AttnShape shape{b_, t_, nh, nkv, hs, past};
    const Recipe attention = attention_recipe(recipe_);
    if (use_cache) {
      const int64_t keys = past + n;
      be.attention_forward(a.atty, cache_probs_, a.q, k_cache_[l].at(0, keys * kv),
                           v_cache_[l].at(0, keys * kv), shape, attention, key(kAttention));
    } else {
      const Buf saved = pass_.training
                            ? a.att_saved
                            : a.att_saved.at(0, be.attn_inference_saved_count(shape, attention));
      be.attention_forward(a.atty, saved, a.q, k, v, shape, attention, key(kAttention));
    }
  }
  if (parts & kPartAttnResidual) {
    be.matmul_residual_forward(a.res_att, product_input(a.atty, C), p.at(o.wo, C * C),
                               p.at(o.bo, C), x, n, C, C, bf16, recipe_, key(kAttnOut));
  }
  if (parts & kPartNorm2) norm(a.ln2, a.ln2_mean, a.ln2_rstd, a.res_att, o.ln2_w, o.ln2_b);
  if (parts & kPartMlp) {
    if (llama) {
      const Backend::Product gate_up[] = {{a.fc, p.at(o.fc, H * C), p.at(o.fc_b, H), H, key(kFc)},
                                          {a.up, p.at(o.up, H * C), p.at(-1, H), H, key(kUp)}};
      be.matmuls_forward(gate_up, product_input(a.ln2, C), n, C, recipe_);
      be.swiglu_forward(a.act, a.fc, a.up, n * H, bf16);
    } else {
      be.matmul_gelu_forward(a.act, a.fc, product_input(a.ln2, C), p.at(o.fc, H * C),
                             p.at(o.fc_b, H), n, C, H, bf16, recipe_, key(kFc));
    }
  }
  if (parts & kPartMlpResidual) {
    be.matmul_residual_forward(a.res_out, product_input(a.act, H), p.at(o.proj, C * H),
                               p.at(o.proj_b, C), a.res_att, n, H, C, bf16, recipe_, key(kProj));
  }
}

std::string Model::check_tokens(const uint32_t* tokens, const uint32_t* targets, int64_t n) const {
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] >= config_.vocab || (targets != nullptr && targets[i] >= config_.vocab)) {
      return cat("token id ", std::max(tokens[i], targets != nullptr ? targets[i] : 0u),
                 " is not below the model's vocabulary of ", config_.vocab);
    }
  }
  return "";
}

void Model::run_forward(bool use_cache, bool logits) {
  Acts& a = *acts_;
  Backend& be = *backend_;
  const Buf& p = weights_;
  const int64_t n = b_ * t_, C = config_.dim, V = config_.vocab;
  const bool llama = config_.arch == Arch::kLlama, bf16 = recipe_.bf16_vector_ops;
  // Position embeddings from the pass's first position on (none for Llama).
  const int64_t first = use_cache ? cached_ : 0;
  const int64_t wpe = params_.wpe() < 0 ? -1 : params_.wpe() + first * C;
  be.embedding_forward(a.encoded, a.tokens, p.at(params_.wte(), V * C),
                       p.at(wpe, (config_.seq_len - first) * C), n, t_, C);
  Buf x = a.encoded;
  for (int64_t l = 0; l < config_.n_layers; ++l) {
    layer_forward(l, x, use_cache);
    x = a.layers[l].res_out;
  }
  const Buf norm_w = p.at(params_.norm_w(), C);
  if (llama) {
    be.rmsnorm_forward(a.lnf, a.lnf_rstd, x, norm_w, n, C, bf16);
  } else {
    be.layernorm_forward(a.lnf, a.lnf_mean, a.lnf_rstd, x, norm_w, p.at(params_.norm_b(), C), n, C,
                         bf16);
  }
  if (logits) {
    be.matmul_forward(a.logits, product_input(a.lnf, C), p.at(params_.classifier(), V * C), {}, n,
                      C, V, classifier_recipe(recipe_), {step_, int32_t(config_.n_layers), 0});
  }
}

std::string Model::forward(const uint32_t* tokens, const uint32_t* targets, int64_t b, int64_t t,
                           float* loss, const PassOptions& options) {
  backward_ready_ = false;
  if (std::string e = reserve(b, t); !e.empty()) return e;
  const int64_t n = b * t, V = config_.vocab;
  if (std::string e = check_tokens(tokens, targets, n); !e.empty()) return e;
  if (std::string e = check_weights_for_recipe(); !e.empty()) return e;
  if (options.training && targets == nullptr) return "a training pass needs targets";
  if (!options.teacher_logits.empty() &&
      (options.teacher_logits.n < n * V || options.teacher_logits.type != acts_->logits.type)) {
    return "the teacher's logits do not match this pass (tokens, vocabulary or activation type)";
  }
  b_ = b, t_ = t;
  pass_ = options;
  logits_.clear();
  Acts& a = *acts_;
  Backend& be = *backend_;
  be.upload(a.tokens.at(0, n), tokens);
  if (targets != nullptr) be.upload(a.targets.at(0, n), targets);
  // With targets and no teacher, the product and the loss are one backend call, which may keep
  // a training pass's gradient where its products read it best (Backend::classifier_forward).
  const bool classifier_with_loss = targets != nullptr && options.teacher_logits.empty();
  run_forward(false, !classifier_with_loss);
  if (targets != nullptr) {
    const float dloss = options.grad_scale * (1.0f / float(n));
    if (classifier_with_loss) {
      be.classifier_forward(a.logits, a.losses, product_input(a.lnf, config_.dim),
                            weights_.at(params_.classifier(), V * config_.dim), a.targets, n,
                            config_.dim, V, options.training, dloss, classifier_recipe(recipe_),
                            {step_, int32_t(config_.n_layers), 0});
    } else {
      be.distillation_loss(a.losses, options.training ? a.logits : Buf{}, a.logits,
                           options.teacher_logits.at(0, n * V), n, V, dloss);
    }
  }
  if (std::string e = be.take_error(); !e.empty()) return e;
  if (targets != nullptr) {
    losses_.resize(size_t(n));
    be.download(losses_.data(), a.losses.at(0, n));
    double total = 0.0;  // in token order, in double: the same on every backend
    for (int64_t i = 0; i < n; ++i) total += losses_[size_t(i)];
    if (loss != nullptr) *loss = float(total / double(n));
  }
  backward_ready_ = options.training;
  return "";
}

Buf Model::device_logits() {
  const Buf logits = acts_->logits.at(0, b_ * t_ * config_.vocab);
  if (logits.n > 0) {
    uint32_t first = 0;  // reading one element back waits for the work that wrote it
    backend_->download(&first, logits.at(0, 1));
  }
  return logits;
}

// An MX cast of the activations makes a pass non-causal: attention casts V along the sequence,
// so a position's output shares a block scale with up to 31 later positions, and changes when
// they arrive. Cached keys and values cannot follow that; element-wise casts have no such reach.
bool Model::can_cache() const {
  return backend_->attends_to_a_cache() &&
         attention_recipe(recipe_).act_fwd.kind != OperandCast::Kind::kMx;
}

std::string Model::reserve_cache(int64_t t) {
  Backend& be = *backend_;
  const int64_t kv = config_.n_kv_heads * config_.head_size(), keys = config_.seq_len;
  const int64_t probs = config_.n_heads * t * keys;
  const bool have_cache = !k_cache_.empty();
  if (have_cache && cache_probs_.n >= probs) return "";
  const double bytes = (have_cache ? 0.0 : 2.0 * double(config_.n_layers * keys * kv)) *
                           double(buf_type_bytes(be.act_type())) +
                       4.0 * double(probs);
  if (const double available = double(be.memory_available()); bytes > available) {
    return cat("a key/value cache of ", keys, " tokens needs ", io::format_bytes(bytes),
               ", more than the ", io::format_bytes(available), " available on ", be.name());
  }
  if (!have_cache) {
    for (int64_t l = 0; l < config_.n_layers; ++l) {
      k_cache_.push_back(be.alloc(be.act_type(), keys * kv));
      v_cache_.push_back(be.alloc(be.act_type(), keys * kv));
      if (k_cache_.back().empty() || v_cache_.back().empty()) {
        const std::string e = be.take_error();
        for (Buf c : k_cache_) be.release(c);
        for (Buf c : v_cache_) be.release(c);
        k_cache_.clear(), v_cache_.clear();
        return e;
      }
    }
  }
  if (!cache_probs_.empty()) be.release(cache_probs_);
  cache_probs_ = be.alloc(BufType::kF32, probs);
  if (cache_probs_.empty()) return be.take_error();
  return "";
}

std::string Model::extend(const uint32_t* tokens, int64_t t) {
  backward_ready_ = false;
  if (!can_cache()) {
    return backend_->attends_to_a_cache()
               ? cat("recipe ", recipe_.name,
                     " casts activations to MX, which a key/value cache "
                     "cannot follow (attention's V blocks span later positions)")
               : cat("the ", backend_->name(), " backend's attention takes no key/value cache");
  }
  if (sequence_failed_) return "a pass on this sequence failed: start a new one";
  if (t < 1) return "a pass needs at least one token";
  if (cached_ + t > config_.seq_len) {
    return cat("the key/value cache holds ", config_.seq_len, " tokens: ", cached_, " + ", t,
               " do not fit");
  }
  if (std::string e = check_tokens(tokens, nullptr, t); !e.empty()) return e;
  if (std::string e = check_weights_for_recipe(); !e.empty()) return e;
  if (std::string e = reserve(1, t); !e.empty()) return e;
  if (std::string e = reserve_cache(t); !e.empty()) return e;
  b_ = 1, t_ = t;
  pass_ = {};
  logits_.clear();
  backend_->upload(acts_->tokens.at(0, t), tokens);
  run_forward(true);
  if (std::string e = backend_->take_error(); !e.empty()) {
    sequence_failed_ = true;  // the cache rows this pass was writing are unknown
    return e;
  }
  cached_ += t;
  return "";
}

void Model::layer_backward(int64_t l, Buf x, Buf dres, const BiasSums& sums) {
  Backend& be = *backend_;
  Acts& s = *acts_;
  LayerActs& a = s.layers[l];
  const LayerOffsets& o = params_.layers()[l];
  const Buf &p = weights_, &g = grads_;
  const int64_t n = b_ * t_, C = config_.dim, H = config_.hidden, hs = config_.head_size();
  const int64_t nh = config_.n_heads, nkv = config_.n_kv_heads;
  const bool llama = config_.arch == Arch::kLlama;
  auto key = [&](int site) { return SrKey{step_, int32_t(l), site}; };
  // With sums.in_norms, each layer norm's backward also sums the bias gradient of the product
  // whose output gradient the residual stream then is (`dres_bias`), and that product's backward
  // sums none.
  auto norm_back = [&](Buf in, Buf mean, Buf rstd, int64_t w, int64_t b, int64_t dres_bias) {
    if (llama) {
      be.rmsnorm_backward(dres, g.at(w, C), s.dln, in, p.at(w, C), rstd, n, C);
    } else {
      be.layernorm_backward(dres, g.at(w, C), g.at(b, C), g.at(dres_bias, C), s.dln, in, p.at(w, C),
                            mean, rstd, n, C);
    }
  };
  auto linear_back = [&](Buf dx, Buf dy, Buf in, int64_t w, int64_t bias, int64_t k, int64_t out,
                         bool accumulate, int site) {
    be.matmul_backward(dx, g.at(w, out * k), g.at(bias, out), dy, in, p.at(w, out * k), n, k, out,
                       accumulate, recipe_, key(site));
  };
  // MLP: dres is d(res_out) = d(proj) and (so far) d(res_att).
  if (llama) {
    linear_back(s.dact, dres, a.act, o.proj, o.proj_b, H, C, false, kProj);
    be.swiglu_backward(s.dfc, s.dup, s.dact, a.fc, a.up, n * H);
    const Backend::ProductGrad up_gate[] = {
        {g.at(o.up, H * C), g.at(-1, H), s.dup, p.at(o.up, H * C), H, key(kUp)},
        {g.at(o.fc, H * C), g.at(o.fc_b, H), s.dfc, p.at(o.fc, H * C), H, key(kFc)}};
    be.matmuls_backward(s.dln, up_gate, a.ln2, n, C, false, recipe_);
  } else {
    // With sums.in_norms, the bias gradient was summed by the layer norm before (the next
    // block's, or the last).
    be.matmul_backward_gelu(s.dfc, s.dact, g.at(o.proj, C * H),
                            g.at(sums.in_norms ? -1 : o.proj_b, C), dres, a.act,
                            p.at(o.proj, C * H), a.fc, n, H, C, recipe_, key(kProj));
    linear_back(s.dln, s.dfc, a.ln2, o.fc, o.fc_b, C, H, false, kFc);
  }
  norm_back(a.res_att, a.ln2_mean, a.ln2_rstd, o.ln2_w, o.ln2_b, sums.in_norms ? o.bo : -1);
  // Attention: dres is now d(res_att) = d(the output projection) and (so far) d(x).
  linear_back(s.datty, dres, a.atty, o.wo, sums.in_norms ? -1 : o.bo, C, C, false, kAttnOut);
  const AttnShape shape{b_, t_, nh, nkv, hs};
  const int64_t q = nh * hs, kv = nkv * hs;
  // With sums.in_attention, attention's backward sums the Q, K and V products' bias gradients.
  const Backend::QkvBiasGrads attention_biases =
      sums.in_attention ? Backend::QkvBiasGrads{g.at(o.bq, q), g.at(o.bk, kv), g.at(o.bv, kv)}
                        : Backend::QkvBiasGrads{};
  auto product_bias = [&](int64_t bias, int64_t width) {
    return g.at(sums.in_attention ? -1 : bias, width);
  };
  be.attention_backward(s.dq, s.dk, s.dv, attention_biases, s.datty, a.q, a.k, a.v, a.atty,
                        a.att_saved, shape, attention_recipe(recipe_), key(kAttention));
  if (llama) {
    be.rope_backward(s.dq, n, t_, nh, hs);
    be.rope_backward(s.dk, n, t_, nkv, hs);
  }
  const Backend::ProductGrad qkv[] = {
      {g.at(o.wq, q * C), product_bias(o.bq, q), s.dq, p.at(o.wq, q * C), q, key(kQ)},
      {g.at(o.wk, kv * C), product_bias(o.bk, kv), s.dk, p.at(o.wk, kv * C), kv, key(kK)},
      {g.at(o.wv, kv * C), product_bias(o.bv, kv), s.dv, p.at(o.wv, kv * C), kv, key(kV)}};
  be.matmuls_backward(s.dln, qkv, a.ln1, n, C, false, recipe_);
  // dres becomes d(the previous block's output) = d(its MLP's down-projection).
  norm_back(x, a.ln1_mean, a.ln1_rstd, o.ln1_w, o.ln1_b,
            l > 0 && sums.in_norms ? params_.layers()[size_t(l - 1)].proj_b : -1);
}

Model::BiasSums Model::bias_sums() const {
  if (config_.arch != Arch::kGpt2) return {};
  const int64_t n = b_ * t_, C = config_.dim;
  const AttnShape shape{b_, t_, config_.n_heads, config_.n_kv_heads, config_.head_size()};
  const bool dy_casts_sum = backend_->sums_bias_with_dy_casts(n, C, recipe_);
  return {.in_norms = !dy_casts_sum,
          .in_attention = !dy_casts_sum && backend_->attention_sums_qkv_biases(shape)};
}

int Model::pack_with(const std::function<std::optional<OperandCast>(int64_t)>& cast_of, bool stored,
                     bool release_fp32) {
  if (fp32_released_) return packed_;
  const int64_t C = config_.dim, H = config_.hidden, V = config_.vocab;
  const int64_t q = config_.n_heads * config_.head_size();
  const int64_t kv = config_.n_kv_heads * config_.head_size();
  const bool release = release_fp32 && backend_->host_visible();
  int packed = 0;
  // `table`: the matrix is also the token embedding, which the forward looks rows up in. Its
  // FP32 copy may go only where the backend reads the table from blocks that hold it exactly.
  auto pack = [&](int64_t offset, int64_t n, int64_t k, bool table) {
    if (offset < 0) return;
    const std::optional<OperandCast> cast = cast_of(offset);
    if (!cast) return;
    const Buf w = weights_.at(offset, n * k);
    const Backend::Packed result = backend_->pack_weight(w, n, k, *cast);
    // Stored weights count only where the blocks are the weights themselves.
    if (result == Backend::Packed::kNo || (stored && result != Backend::Packed::kExact)) return;
    ++packed;
    packed_cast_ = stored ? OperandCast::none() : *cast;
    const bool releasable =
        !table || (result == Backend::Packed::kExact && backend_->embeds_from_packed());
    if (release && releasable) {
      io::release_pages(w.p, w.bytes());
      fp32_released_ = true;
      released_bytes_ += w.bytes();
    }
  };
  for (const LayerOffsets& o : params_.layers()) {
    pack(o.wq, q, C, false);
    pack(o.wk, kv, C, false);
    pack(o.wv, kv, C, false);
    pack(o.wo, C, C, false);
    pack(o.fc, H, C, false);
    pack(o.up, H, C, false);
    pack(o.proj, C, H, false);
  }
  const bool tied = params_.classifier() == params_.wte();
  pack(params_.classifier(), V, C, tied);
  // An untied embedding is no product's weight: it is packed only as a file's own blocks, and
  // only to release its FP32 copy.
  if (!tied && stored && release && backend_->embeds_from_packed()) pack(params_.wte(), V, C, true);
  if (packed > 0) packed_ = packed;
  // Nothing reads or writes gradients once backward() is refused.
  if (release && packed > 0) io::release_pages(params_.grad(), params_.size() * sizeof(float));
  return packed;
}

int Model::pack_weights(bool release_fp32) {
  const OperandCast classifier_cast = classifier_recipe(recipe_).weight_fwd;
  return pack_with(
      [&](int64_t offset) {
        return std::optional(offset == params_.classifier() ? classifier_cast : recipe_.weight_fwd);
      },
      false, release_fp32);
}

int Model::pack_stored_weights(const std::map<std::string, QuantSpec>& stored, bool release_fp32) {
  std::map<int64_t, const QuantSpec*> by_offset;
  for (const ParamView& v : params_.views()) {
    if (const auto it = stored.find(v.name); it != stored.end()) by_offset[v.offset] = &it->second;
  }
  return pack_with(
      [&](int64_t offset) -> std::optional<OperandCast> {
        const auto it = by_offset.find(offset);
        if (it == by_offset.end()) return std::nullopt;
        return OperandCast::mx(*it->second);
      },
      true, release_fp32);
}

std::string Model::check_weights_for_recipe() const {
  const OperandCast& w = recipe_.weight_fwd;
  if (!fp32_released_) return "";
  if (packed_cast_.is_none()) {
    if (w.is_none()) return "";
    return cat("recipe ", recipe_.name,
               " cannot run: it casts weights, and the FP32 copies of the file's MX weights were "
               "released when they were packed");
  }
  if (w.kind == OperandCast::Kind::kMx && w == packed_cast_) return "";
  return cat("recipe ", recipe_.name,
             " cannot run: the weights are packed for another weight cast and their FP32 copies "
             "were released");
}

std::string Model::backward(const GradsReady& ready) {
  if (packed_ > 0) return "a model with packed weights is for inference only";
  if (acts_ == nullptr || !backward_ready_) return "backward needs a training forward pass";
  backward_ready_ = false;
  Acts& a = *acts_;
  Backend& be = *backend_;
  const Buf &p = weights_, &g = grads_;
  const int64_t n = b_ * t_, C = config_.dim, V = config_.vocab, L = config_.n_layers;
  // The training forward left d(loss)/d(logits) in a.logits, or where the backend's
  // classifier_forward keeps it.
  be.classifier_backward(a.dln, g.at(params_.classifier(), V * C), a.logits, a.lnf,
                         p.at(params_.classifier(), V * C), n, C, V, classifier_recipe(recipe_),
                         {step_, int32_t(L), 0});
  // Every parameter's range, in the layout's order: the embeddings, each block's tensors,
  // the final norm, then (untied) the classifier.
  auto block_begin = [&](int64_t l) {
    return l < L ? params_.layers()[size_t(l)].ln1_w : params_.norm_w();
  };
  auto report = [&](int64_t first, int64_t end) {
    if (ready) ready(first, end - first);
  };
  if (!config_.tied) report(params_.classifier(), params_.count());
  be.zero(a.dres.at(0, n * C));
  const Buf x = a.layers[L - 1].res_out;
  // Decided once a pass: the same for every layer, and the backend's answer takes host work.
  const BiasSums sums = bias_sums();
  const Buf norm_w = p.at(params_.norm_w(), C);
  if (config_.arch == Arch::kLlama) {
    be.rmsnorm_backward(a.dres, g.at(params_.norm_w(), C), a.dln, x, norm_w, a.lnf_rstd, n, C);
  } else {
    // The last block's down-projection bias gradient with it, where the norms sum those.
    const int64_t last_proj_b =
        L > 0 && sums.in_norms ? params_.layers()[size_t(L - 1)].proj_b : -1;
    be.layernorm_backward(a.dres, g.at(params_.norm_w(), C), g.at(params_.norm_b(), C),
                          g.at(last_proj_b, C), a.dln, x, norm_w, a.lnf_mean, a.lnf_rstd, n, C);
  }
  report(params_.norm_w(), config_.tied ? params_.count() : params_.classifier());
  for (int64_t l = L - 1; l >= 0; --l) {
    const Buf in = l == 0 ? a.encoded : a.layers[l - 1].res_out;
    layer_backward(l, in, a.dres, sums);
    report(block_begin(l), block_begin(l + 1));
  }
  be.embedding_backward(g.at(params_.wte(), V * C), g.at(params_.wpe(), config_.seq_len * C),
                        a.dres, a.tokens, n, t_, C);
  report(0, block_begin(0));
  return be.take_error();
}

void Model::zero_grad() {
  backend_->zero(grads_);
}

const float* Model::host_logits(int64_t first_row, int64_t rows) {
  if (acts_ == nullptr || pass_.training) return nullptr;
  const int64_t v = config_.vocab;
  const Buf src = acts_->logits.at(first_row * v, rows * v);
  if (backend_->host_visible() && src.type == BufType::kF32) return src.as<const float>();
  logits_.resize(size_t(rows * v));
  if (src.type == BufType::kF32) {
    backend_->download(logits_.data(), src);
  } else {
    // Kept across calls and widened on every thread: an evaluation reads hundreds of MB of
    // logits per batch, which a fresh buffer and one thread made slower than the GPU's pass.
    logits_bits_.resize(size_t(rows * v));
    backend_->download(logits_bits_.data(), src);
    mx::cpu::parallel_for(rows * v, 4096, 0, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        logits_[size_t(i)] = bf16_to_float(logits_bits_[size_t(i)]);
    });
  }
  return logits_.data();
}

const float* Model::logits() {
  return host_logits(0, b_ * t_);
}

const float* Model::logits_row(int64_t row) {
  return host_logits(row, 1);
}

uint32_t sample_token(const float* logits, int64_t vocab, int top_k, float temperature,
                      uint64_t* rng_state) {
  // Largest first; ties by lower id, so the choice is deterministic. Only the first k are
  // ordered: a full sort of a 50K vocabulary costs as much as a small model's pass.
  auto before = [&](int64_t x, int64_t y) {
    return logits[x] > logits[y] || (logits[x] == logits[y] && x < y);
  };
  if (temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) best = before(i, best) ? i : best;
    return uint32_t(best);
  }
  const int64_t k = top_k <= 0 || top_k >= vocab ? vocab : top_k;
  std::vector<int64_t> order(vocab);
  for (int64_t i = 0; i < vocab; ++i) order[i] = i;
  std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
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
