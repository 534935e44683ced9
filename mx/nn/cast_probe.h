// A backend that measures what a recipe's casts do to the operands of the linear layers'
// products: it wraps another backend, passes every op on to it unchanged, and before each
// linear product reads the operands back and casts them on the host exactly as the CPU
// reference does (same spec, axis and stochastic-rounding stream), keeping per layer, site and
// role the error of the cast against the values it was given. Yang et al. found that this
// error tracks the loss gap of low-precision training; `mx study errors` prints it.
//
// Attention's own casts (Q Kᵀ, P V and their gradients inside the fused kernels) are not
// measured: only the seven linear layers of each block and the classifier.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "mx/nn/backend.h"
#include "mx/nn/cast_streams.h"

namespace mx::nn {

// One role's casts at one product site, summed over every call since the last clear.
struct CastError {
  int layer = 0;  // n_layers: the classifier
  int site = 0;   // SrKey's site (model.h)
  LinearOperand role = LinearOperand::kActFwd;
  int64_t count = 0;    // values cast
  int64_t nonzero = 0;  // of them not zero
  int64_t flushed = 0;  // nonzero values the cast made zero
  double sum_sq = 0;    // sum of x^2
  double err_sq = 0;    // sum of (cast(x) - x)^2

  // sqrt(err_sq / sum_sq): the cast's error relative to the operand's size.
  double relative_rmse() const;
  double flushed_fraction() const;
};

// The recipe role's JSON name ("act_fwd", ...).
std::string_view linear_operand_name(LinearOperand role);

class CastProbe final : public Backend {
 public:
  // `threads` (0: all) cast the operands read back, on the host.
  CastProbe(std::unique_ptr<Backend> inner, int threads);

  // In the order first met; casts that are none are not recorded.
  std::vector<CastError> errors() const;
  void clear() { errors_.clear(), order_.clear(); }
  // The first cast that failed on the host (a shape its spec cannot take); "" when none.
  const std::string& probe_error() const { return probe_error_; }

  std::string_view name() const override { return inner_->name(); }
  BufType act_type() const override { return inner_->act_type(); }
  bool host_visible() const override { return inner_->host_visible(); }
  Buf alloc(BufType type, int64_t n) override { return inner_->alloc(type, n); }
  void hold_weights(Buf weights) override { inner_->hold_weights(weights); }
  void release(Buf x) override { inner_->release(x); }
  Buf wrap(void* host, BufType type, int64_t n) override { return inner_->wrap(host, type, n); }
  void upload(Buf dst, const void* host) override { inner_->upload(dst, host); }
  void download(void* host, Buf src) override { inner_->download(host, src); }
  void zero(Buf x) override { inner_->zero(x); }
  void copy(Buf dst, Buf src) override { inner_->copy(dst, src); }
  int64_t memory_available() override { return inner_->memory_available(); }
  int64_t peak_memory() override { return inner_->peak_memory(); }
  std::string device_description() const override { return inner_->device_description(); }

  void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                      const Recipe& recipe, SrKey key) override;
  void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx, const Recipe& recipe, SrKey key) override;
  void gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast, uint64_t stream) override {
    inner_->gram(h, x, m, k, cast, stream);
  }
  // Packed weights would skip the casts this backend measures.
  Packed pack_weight(Buf, int64_t, int64_t, const OperandCast&) override { return Packed::kNo; }

  void embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                         int64_t c) override {
    inner_->embedding_forward(out, tokens, wte, wpe, n, t, c);
  }
  void embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                          int64_t c) override {
    inner_->embedding_backward(dwte, dwpe, dout, tokens, n, t, c);
  }
  void layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n, int64_t c,
                         bool bf16) override {
    inner_->layernorm_forward(out, mean, rstd, x, w, b, n, c, bf16);
  }
  void layernorm_backward(Buf dx, Buf dw, Buf db, Buf dx_bias, Buf dout, Buf x, Buf w, Buf mean,
                          Buf rstd, int64_t n, int64_t c) override {
    inner_->layernorm_backward(dx, dw, db, dx_bias, dout, x, w, mean, rstd, n, c);
  }
  void rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c, bool bf16) override {
    inner_->rmsnorm_forward(out, rstd, x, w, n, c, bf16);
  }
  void rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                        int64_t c) override {
    inner_->rmsnorm_backward(dx, dw, dout, x, w, rstd, n, c);
  }
  void gelu_forward(Buf out, Buf x, int64_t count, bool bf16) override {
    inner_->gelu_forward(out, x, count, bf16);
  }
  void gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) override {
    inner_->gelu_backward(dx, x, dout, count);
  }
  void swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) override {
    inner_->swiglu_forward(out, gate, up, count, bf16);
  }
  void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) override {
    inner_->swiglu_backward(dgate, dup, dout, gate, up, count);
  }
  void residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) override {
    inner_->residual_forward(out, a, b, count, bf16);
  }
  void rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                    bool bf16) override {
    inner_->rope_forward(x, n, t, heads, hs, first_position, bf16);
  }
  void rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) override {
    inner_->rope_backward(dx, n, t, heads, hs);
  }

  int64_t attn_saved_count(const AttnShape& s, const Recipe& recipe) const override {
    return inner_->attn_saved_count(s, recipe);
  }
  int64_t attn_inference_saved_count(const AttnShape& s, const Recipe& recipe) const override {
    return inner_->attn_inference_saved_count(s, recipe);
  }
  bool attends_to_a_cache() const override { return inner_->attends_to_a_cache(); }
  void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                         const Recipe& recipe, SrKey key) override {
    inner_->attention_forward(out, saved, q, k, v, s, recipe, key);
  }
  void attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout, Buf q, Buf k,
                          Buf v, Buf out, Buf saved, const AttnShape& s, const Recipe& recipe,
                          SrKey key) override {
    inner_->attention_backward(dq, dk, dv, dbias, dout, q, k, v, out, saved, s, recipe, key);
  }

  void classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n, int64_t v,
                       float dloss) override {
    inner_->classifier_loss(losses, dlogits, logits, targets, n, v, dloss);
  }
  void distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n, int64_t v,
                         float dloss) override {
    inner_->distillation_loss(losses, dlogits, logits, teacher, n, v, dloss);
  }
  double norm(Buf x) override { return inner_->norm(x); }
  void scale(Buf x, float factor) override { inner_->scale(x, factor); }
  void adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) override {
    inner_->adamw(params, grads, m, v, decay_mask, s);
  }
  std::string take_error() override { return inner_->take_error(); }

 private:
  // Casts src [rows, cols] (blocks along `axis`) as the product at `key` does for `role`, and
  // adds the error to that role's record.
  void measure(Buf src, int64_t rows, int64_t cols, int axis, const OperandCast& cast,
               LinearOperand role, SrKey key);

  std::unique_ptr<Backend> inner_;
  int threads_;
  using Where = std::tuple<int, int, LinearOperand>;
  std::map<Where, CastError> errors_;
  std::vector<Where> order_;
  std::vector<float> values_, cast_;
  std::string probe_error_;
};

}  // namespace mx::nn
