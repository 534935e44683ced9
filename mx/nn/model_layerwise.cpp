// Model's layer-wise passes (model.h): the embedding and one block at a time, with the
// residual stream on the host between them.
#include "mx/io/cat.h"
#include "mx/nn/model.h"
#include "mx/nn/model_acts.h"

namespace mx::nn {

using io::cat;

namespace {

std::string check_layerwise(const Backend& be, int64_t layer, int64_t layers) {
  if (be.act_type() != BufType::kF32) {
    return cat("layer-wise passes need FP32 activations; the ", be.name(), " backend keeps ",
               "bfloat16 ones under this recipe");
  }
  if (layer < 0 || layer >= layers) return cat("the model has no block ", layer);
  return "";
}

}  // namespace

std::string Model::embed(const uint32_t* tokens, int64_t b, int64_t t, float* x) {
  backward_ready_ = false;
  if (std::string e = check_layerwise(*backend_, 0, config_.n_layers); !e.empty()) return e;
  if (std::string e = reserve_for(b, t, /*one_block=*/true); !e.empty()) return e;
  const int64_t n = b * t, C = config_.dim, V = config_.vocab;
  if (std::string e = check_tokens(tokens, nullptr, n); !e.empty()) return e;
  b_ = b, t_ = t;
  Backend& be = *backend_;
  Acts& a = *acts_;
  be.upload(a.tokens.at(0, n), tokens);
  be.embedding_forward(a.encoded, a.tokens, weights_.at(params_.wte(), V * C),
                       weights_.at(params_.wpe(), config_.seq_len * C), n, t, C);
  be.download(x, a.encoded.at(0, n * C));
  return be.take_error();
}

std::string Model::forward_block(int64_t layer, float* x, int64_t b, int64_t t) {
  return forward_block_parts(layer, x, nullptr, b, t, ~0u);
}

std::string Model::forward_block_step(int64_t layer, BlockStep step, float* x, float* side,
                                      int64_t b, int64_t t) {
  if (side == nullptr && step != BlockStep::kNorm1) return "this block step needs a side array";
  switch (step) {
    case BlockStep::kNorm1:
      return forward_block_parts(layer, x, side, b, t, kPartNorm1);
    case BlockStep::kAttention:
      return forward_block_parts(layer, x, side, b, t, kPartNorm1 | kPartAttention);
    case BlockStep::kAttnResidual:
      return forward_block_parts(layer, x, side, b, t, kPartAttnResidual | kPartNorm2);
    case BlockStep::kMlp:
      return forward_block_parts(layer, x, side, b, t, kPartNorm2 | kPartMlp);
    case BlockStep::kMlpResidual:
      return forward_block_parts(layer, x, side, b, t, kPartMlpResidual);
  }
  return "unknown block step";
}

// Moves the host arrays in and out of the buffers the parts read and write: x is the block's
// input unless the parts start after attention's residual, when it is that residual.
std::string Model::forward_block_parts(int64_t layer, float* x, float* side, int64_t b, int64_t t,
                                       unsigned parts) {
  backward_ready_ = false;
  if (std::string e = check_layerwise(*backend_, layer, config_.n_layers); !e.empty()) return e;
  if (std::string e = reserve_for(b, t, /*one_block=*/true); !e.empty()) return e;
  if (std::string e = check_weights_for_recipe(); !e.empty()) return e;
  const int64_t n = b * t, C = config_.dim, H = config_.hidden;
  b_ = b, t_ = t;
  pass_ = {};
  Backend& be = *backend_;
  Acts& acts = *acts_;
  LayerActs& a = layer_acts(layer);
  const bool from_residual = (parts & (kPartNorm1 | kPartAttention | kPartAttnResidual)) == 0;
  be.upload((from_residual ? a.res_att : acts.encoded).at(0, n * C), x);
  if (parts == (kPartAttnResidual | kPartNorm2)) be.upload(a.atty.at(0, n * C), side);
  if (parts == kPartMlpResidual) be.upload(a.act.at(0, n * H), side);
  layer_forward(layer, acts.encoded, /*use_cache=*/false, parts);
  if (parts & kPartMlpResidual) {
    be.download(x, a.res_out.at(0, n * C));
  } else if (parts & kPartAttnResidual) {
    be.download(x, a.res_att.at(0, n * C));
  } else if (parts & kPartAttention) {
    be.download(side, a.atty.at(0, n * C));
  } else if (parts & kPartMlp) {
    be.download(side, a.act.at(0, n * H));
  }
  return be.take_error();
}

std::string Model::linear_input_buf(int64_t layer, LinearSite site, Buf* in, int64_t* k) {
  if (std::string e = check_layerwise(*backend_, layer, config_.n_layers); !e.empty()) return e;
  if (acts_ == nullptr || b_ * t_ == 0) return "no block has run yet";
  const LayerActs& a = layer_acts(layer);
  *k = config_.dim;
  switch (site) {
    case LinearSite::kQ:
    case LinearSite::kK:
    case LinearSite::kV:
      *in = a.ln1;
      break;
    case LinearSite::kAttnOut:
      *in = a.atty;
      break;
    case LinearSite::kFc:
    case LinearSite::kUp:
      *in = a.ln2;
      break;
    case LinearSite::kProj:
      *in = a.act;
      *k = config_.hidden;
      break;
  }
  return "";
}

std::string Model::linear_input(int64_t layer, LinearSite site, std::vector<float>* out) {
  Buf in;
  int64_t k = 0;
  if (std::string e = linear_input_buf(layer, site, &in, &k); !e.empty()) return e;
  const int64_t n = b_ * t_;
  out->resize(size_t(n * k));
  backend_->download(out->data(), in.at(0, n * k));
  return backend_->take_error();
}

std::string Model::linear_input_gram(int64_t layer, LinearSite site, const OperandCast& cast,
                                     uint64_t stream, std::vector<float>* out) {
  Buf in;
  int64_t k = 0;
  if (std::string e = linear_input_buf(layer, site, &in, &k); !e.empty()) return e;
  const int64_t n = b_ * t_;
  Backend& be = *backend_;
  out->resize(size_t(k * k));
  if (be.host_visible()) {
    // The CPU's symmetric product writes straight into `out`, exactly symmetric already.
    be.gram(be.wrap(out->data(), BufType::kF32, k * k), in.at(0, n * k), n, k, cast, stream);
    return be.take_error();
  }
  const Buf h = be.alloc(BufType::kF32, k * k);
  if (h.empty()) return cat("cannot allocate the ", k, " x ", k, " Gram matrix");
  be.gram(h, in.at(0, n * k), n, k, cast, stream);
  be.download(out->data(), h);
  be.release(h);
  // Exactly symmetric, whichever order the device's product summed the two triangles in.
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < i; ++j) (*out)[size_t(i * k + j)] = (*out)[size_t(j * k + i)];
  }
  return be.take_error();
}

std::string Model::linear_input_product(int64_t layer, LinearSite site, std::span<float> rows,
                                        std::vector<float>* out) {
  Buf in;
  int64_t k = 0;
  if (std::string e = linear_input_buf(layer, site, &in, &k); !e.empty()) return e;
  const int64_t n = b_ * t_;
  if (int64_t(rows.size()) != n * k) {
    return cat("the rows hold ", rows.size(), " values where the input holds ", n * k);
  }
  Backend& be = *backend_;
  if (be.act_type() != BufType::kF32) return "the input product needs float32 activations";
  out->assign(size_t(k * k), 0.0f);
  // dW [k, k] += dyᵀ x with dy = rows and x = X: the weight gradient's product, uncast.
  const Recipe uncast;
  if (be.host_visible()) {
    be.matmul_backward({}, be.wrap(out->data(), BufType::kF32, k * k), {},
                       be.wrap(rows.data(), BufType::kF32, n * k), in.at(0, n * k), {}, n, k, k,
                       false, uncast, {});
    return be.take_error();
  }
  const Buf r = be.alloc(BufType::kF32, n * k), p = be.alloc(BufType::kF32, k * k);
  if (r.empty() || p.empty()) {
    be.release(r), be.release(p);
    return cat("cannot allocate the ", n, " x ", k, " rows and their ", k, " x ", k, " product");
  }
  be.upload(r, rows.data());
  be.matmul_backward({}, p, {}, r, in.at(0, n * k), {}, n, k, k, false, uncast, {});
  be.download(out->data(), p);
  be.release(r), be.release(p);
  return be.take_error();
}

int64_t Model::linear_weight(int64_t layer, LinearSite site) const {
  const LayerOffsets& o = params_.layers()[size_t(layer)];
  switch (site) {
    case LinearSite::kQ:
      return o.wq;
    case LinearSite::kK:
      return o.wk;
    case LinearSite::kV:
      return o.wv;
    case LinearSite::kAttnOut:
      return o.wo;
    case LinearSite::kFc:
      return o.fc;
    case LinearSite::kUp:
      return o.up;
    case LinearSite::kProj:
      return o.proj;
  }
  return -1;
}

}  // namespace mx::nn
