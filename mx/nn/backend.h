// The compute backend of the model: memory and every op a training step runs. The model
// (model.h) calls nothing else, so the CPU backend (cpu/cpu_backend.h, the reference) and the
// CUDA backend (cuda/cuda_backend.h) run the same model code.
//
// Buffers (buf.h) belong to the backend. Weights, gradients and AdamW's moments are FP32;
// activations are act_type(): FP32 on the CPU, BF16 or FP32 on the GPU. Ops are enqueued in
// order; download() is the only point where the host waits for them.
//
// Gradients: parameter gradients accumulate (+=), so that micro-batches add up; activation
// gradients are assigned, except where an op says it accumulates (a residual stream's gradient
// gathers from two branches, the input of q, k and v from three products).
//
// Matrix products (linear layers and attention) apply the recipe: each operand is cast (bf16 or
// MX) along the reduction axis of the GEMM that uses it (recipe.h), with stochastic-rounding
// streams keyed by SrKey, so that the bits do not depend on the backend's work split.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "mx/nn/buf.h"
#include "mx/nn/recipe.h"

namespace mx::nn {

// Where a matrix product sits in a step: its stochastic-rounding stream. Sites 0-2 q/k/v,
// 3 attention, 4 attention output, 5 fc/gate, 6 up, 7 mlp output; the classifier is layer
// n_layers, site 0.
struct SrKey {
  uint64_t step = 0;
  int32_t layer = 0;
  int32_t site = 0;
};

// Causal self-attention with grouped-query heads: q [B, T, nh, hs], k and v [B, past + T, nkv,
// hs]; query head h reads kv head h / (nh / nkv). With past > 0 (inference with a key/value
// cache) the queries are the last T of past + T positions, and query i sees keys 0 .. past + i.
struct AttnShape {
  int64_t b, t, nh, nkv, hs;
  int64_t past = 0;
  int64_t keys() const { return past + t; }
};

// One AdamW update (adamw.h): p -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * p [where decays]),
// the moments taking each gradient as g * grad_scale (float32 products, as a separate scale()
// would leave them: global-norm clipping without a pass of its own). The gradients stay as
// they were.
struct AdamWStep {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t
  float grad_scale = 1.0f;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- Memory ----
  // The type of activation buffers.
  virtual BufType act_type() const = 0;
  // True when Bufs are host memory the model may also use as such (the CPU backend): weights and
  // moments are then shared with the host copies, and uploads and downloads of them are no-ops.
  virtual bool host_visible() const = 0;
  // Zero-filled. An empty Buf when the memory is not there (take_error says so).
  virtual Buf alloc(BufType type, int64_t n) = 0;
  // The model's parameters live in `weights` from now on (a Buf from alloc). A backend may
  // keep copies derived from them (bfloat16 operands, the weights' MX casts), which it must
  // renew whenever upload, copy, zero or adamw writes to them: nothing else does.
  virtual void hold_weights(Buf weights) { (void)weights; }
  // Frees a Buf that alloc returned (whole, not a view of it); the backend frees the rest when
  // it goes.
  virtual void release(Buf x) = 0;
  // A Buf over host memory that stays the caller's; host_visible() backends only.
  virtual Buf wrap(void* host, BufType type, int64_t n) = 0;
  virtual void upload(Buf dst, const void* host) = 0;
  virtual void download(void* host, Buf src) = 0;
  virtual void zero(Buf x) = 0;
  // dst := src, two Bufs of this backend of the same type and size that do not overlap.
  virtual void copy(Buf dst, Buf src) = 0;
  // Bytes that alloc can still give (for checks before a large allocation).
  virtual int64_t memory_available() = 0;
  // For reports: the most memory in use so far (the process's peak resident set on the CPU,
  // the device's memory in use after this backend's largest allocation on a GPU), and what the
  // device is ("NVIDIA H200", "CPU, 16 threads").
  virtual int64_t peak_memory() = 0;
  virtual std::string device_description() const = 0;

  // ---- Linear layers ----
  // y[M,N] = x[M,K] W[N,K]^T (+ bias[N]).
  virtual void matmul_forward(Buf y, Buf x, Buf w, Buf bias, int64_t m, int64_t k, int64_t n,
                              const Recipe& recipe, SrKey key) = 0;
  // dx[M,K] = (or += when accumulate_dx) dy W; dw[N,K] += dy^T x; dbias[N] += colsum(dy). Any
  // output may be empty.
  virtual void matmul_backward(Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w, int64_t m,
                               int64_t k, int64_t n, bool accumulate_dx, const Recipe& recipe,
                               SrKey key) = 0;

  // Room that a product input x[M,K] may carry past its M*K values (0, this default: none).
  // Handed to a training pass's forward product with that room, x may gain there what its
  // backward products read of it, made in the same read as the forward's cast (the CUDA backend
  // keeps the cast along M that the weight gradient's product takes); handed unchanged to the
  // backward, x's cast is then read there instead of made again. x's M*K values must not change
  // in between.
  virtual int64_t input_kept_count(int64_t m, int64_t k, const Recipe& recipe) const {
    (void)m, (void)k, (void)recipe;
    return 0;
  }

  // Whether the backward of a product with output gradient dy[M,N] under `recipe` sums its
  // bias gradient in a read of dy that it makes anyway (the CUDA backend's one-read casts of dy
  // along both axes; false, this default: a pass of its own). Where it does not, the model has
  // layernorm_backward sum that bias from the residual stream.
  virtual bool sums_bias_with_dy_casts(int64_t m, int64_t n, const Recipe& recipe) const {
    (void)m, (void)n, (void)recipe;
    return false;
  }

  // Products of one input x[M,K] (attention's Q, K and V; Llama's gate and up): each
  // y[M,n] = x W^T (+ bias) under its own stochastic key, as matmul_forward (this default); a
  // backend may cast x once for all of them where the casts would agree.
  struct Product {
    Buf y, w, bias;
    int64_t n = 0;
    SrKey key;
  };
  virtual void matmuls_forward(std::span<const Product> products, Buf x, int64_t m, int64_t k,
                               const Recipe& recipe) {
    for (const Product& p : products) matmul_forward(p.y, x, p.w, p.bias, m, k, p.n, recipe, p.key);
  }
  // Their backward, in the order given: dx[M,K] = (or += when accumulate_dx) the sum of each
  // dy W, the first product writing dx and the rest adding to it; dw and dbias as
  // matmul_backward's.
  struct ProductGrad {
    Buf dw, dbias, dy, w;
    int64_t n = 0;
    SrKey key;
  };
  virtual void matmuls_backward(Buf dx, std::span<const ProductGrad> grads, Buf x, int64_t m,
                                int64_t k, bool accumulate_dx, const Recipe& recipe) {
    for (size_t i = 0; i < grads.size(); ++i) {
      const ProductGrad& g = grads[i];
      matmul_backward(dx, g.dw, g.dbias, g.dy, x, g.w, m, k, g.n, accumulate_dx || i > 0, recipe,
                      g.key);
    }
  }

  // GPT-2's MLP product and its GELU: pre[M,N] = x W^T + bias, out = gelu(pre), as
  // matmul_forward then gelu_forward (this default); a backend may fuse the two.
  virtual void matmul_gelu_forward(Buf out, Buf pre, Buf x, Buf w, Buf bias, int64_t m, int64_t k,
                                   int64_t n, bool bf16, const Recipe& recipe, SrKey key) {
    matmul_forward(pre, x, w, bias, m, k, n, recipe, key);
    gelu_forward(out, pre, m * n, bf16);
  }
  // A product that feeds a residual stream: out[M,N] = residual + (x W^T + bias), out not
  // overlapping residual, as matmul_forward into `out` then residual_forward in place (this
  // default); a backend may add the residual in the product's epilogue.
  virtual void matmul_residual_forward(Buf out, Buf x, Buf w, Buf bias, Buf residual, int64_t m,
                                       int64_t k, int64_t n, bool bf16, const Recipe& recipe,
                                       SrKey key) {
    matmul_forward(out, x, w, bias, m, k, n, recipe, key);
    residual_forward(out, residual, out, m * n, bf16);
  }
  // The backward of a product whose input x is gelu(pre): dpre[M,K] = gelu'(pre) (dy W), dw and
  // dbias as matmul_backward's. This default runs matmul_backward into `dx` (scratch of dpre's
  // size), then gelu_backward; a backend may fuse the GELU into the dx product.
  virtual void matmul_backward_gelu(Buf dpre, Buf dx, Buf dw, Buf dbias, Buf dy, Buf x, Buf w,
                                    Buf pre, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                                    SrKey key) {
    matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, false, recipe, key);
    gelu_backward(dpre, pre, dx, m * k);
  }

  // h[K,K] (float32) = c^T c, c = x[M,K] cast by `cast` (blocks along K, stochastic draws from
  // `stream`): the Gram matrix of a linear layer's inputs as its forward product reads them,
  // for post-training quantization (mx/ptq). Each element is a float32 sum over the M rows.
  virtual void gram(Buf h, Buf x, int64_t m, int64_t k, const OperandCast& cast,
                    uint64_t stream) = 0;

  // ---- Packed weights (inference) ----
  // Keeps the weight w [N, K] from now on also as the MX blocks that `cast` (an MX weight cast)
  // makes of it, and runs matmul_forward with w and that weight cast from the packed blocks:
  // no cast per call, and a product that reads 4- to 8-bit elements. Where the blocks hold w's
  // values exactly (w came from such blocks, as an MX model file's weights do), products with
  // no weight cast read them too. For inference: w must not change after. kNo, doing nothing,
  // where the backend keeps no packed weights or cannot pack this cast (the products then go
  // on casting w at each call).
  enum class Packed { kNo, kCast, kExact };
  virtual Packed pack_weight(Buf w, int64_t n, int64_t k, const OperandCast& cast) = 0;
  // Whether embedding_forward reads a table packed kExact from its blocks (so that its FP32
  // copy may be released, as for a classifier tied to the embedding).
  virtual bool embeds_from_packed() const { return false; }
  // Bytes of the packed blocks kept so far (codes, scales and offsets).
  virtual int64_t packed_bytes() const { return 0; }

  // ---- Vector ops (`bf16`: round outputs to bfloat16, recipe.bf16_vector_ops) ----
  // out[N, C] = wte[tokens[n]] (+ wpe[n % T]); dwte, dwpe +=.
  virtual void embedding_forward(Buf out, Buf tokens, Buf wte, Buf wpe, int64_t n, int64_t t,
                                 int64_t c) = 0;
  virtual void embedding_backward(Buf dwte, Buf dwpe, Buf dout, Buf tokens, int64_t n, int64_t t,
                                  int64_t c) = 0;
  // Norms save mean/rstd (FP32, [N]); their backward accumulates into dx (a residual stream).
  // layernorm_backward's dx_bias, where given, += the column sums of dx as the update leaves it:
  // the bias gradient of the product whose output gradient that residual stream is, taken from
  // the values the norm holds anyway (the product's backward then sums no bias).
  virtual void layernorm_forward(Buf out, Buf mean, Buf rstd, Buf x, Buf w, Buf b, int64_t n,
                                 int64_t c, bool bf16) = 0;
  virtual void layernorm_backward(Buf dx, Buf dw, Buf db, Buf dx_bias, Buf dout, Buf x, Buf w,
                                  Buf mean, Buf rstd, int64_t n, int64_t c) = 0;
  virtual void rmsnorm_forward(Buf out, Buf rstd, Buf x, Buf w, int64_t n, int64_t c,
                               bool bf16) = 0;
  virtual void rmsnorm_backward(Buf dx, Buf dw, Buf dout, Buf x, Buf w, Buf rstd, int64_t n,
                                int64_t c) = 0;
  virtual void gelu_forward(Buf out, Buf x, int64_t count, bool bf16) = 0;
  virtual void gelu_backward(Buf dx, Buf x, Buf dout, int64_t count) = 0;
  virtual void swiglu_forward(Buf out, Buf gate, Buf up, int64_t count, bool bf16) = 0;
  virtual void swiglu_backward(Buf dgate, Buf dup, Buf dout, Buf gate, Buf up, int64_t count) = 0;
  virtual void residual_forward(Buf out, Buf a, Buf b, int64_t count, bool bf16) = 0;
  // In place on x[N, heads, hs], row r at position first_position + r % t; the backward rotates
  // the gradient back.
  virtual void rope_forward(Buf x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                            int64_t first_position, bool bf16) = 0;
  virtual void rope_backward(Buf dx, int64_t n, int64_t t, int64_t heads, int64_t hs) = 0;

  // ---- Attention ----
  // What the forward keeps for the backward under this recipe, in FP32 elements: the CPU keeps
  // the probabilities ([B, nh, T, past + T]); a fused kernel keeps one log-sum-exp per row
  // ([B, nh, T]) and what else its backward reads.
  virtual int64_t attn_saved_count(const AttnShape& s, const Recipe& recipe) const = 0;
  // The part of that an inference forward (no backward to follow) is handed: a backend whose
  // forward also computes what only its backward reads skips that work for a shorter `saved`.
  virtual int64_t attn_inference_saved_count(const AttnShape& s, const Recipe& recipe) const {
    return attn_saved_count(s, recipe);
  }
  // Whether attention_forward takes a shape with past > 0 (the backward never does).
  virtual bool attends_to_a_cache() const = 0;
  virtual void attention_forward(Buf out, Buf saved, Buf q, Buf k, Buf v, const AttnShape& s,
                                 const Recipe& recipe, SrKey key) = 0;
  // dq, dk, dv are assigned. Each of dbias's gradients that is given += the column sums of its
  // output, where attention_sums_qkv_biases said so (dbias is empty otherwise).
  struct QkvBiasGrads {
    Buf q, k, v;
  };
  virtual void attention_backward(Buf dq, Buf dk, Buf dv, const QkvBiasGrads& dbias, Buf dout,
                                  Buf q, Buf k, Buf v, Buf out, Buf saved, const AttnShape& s,
                                  const Recipe& recipe, SrKey key) = 0;
  // Whether attention_backward over `s` takes the bias gradients of the products that made Q,
  // K and V, summing them from the gradients it writes anyway (the CUDA backend's tensor-core
  // kernels, as they store their tiles; false, this default: those products' backward sums
  // them in a pass of its own).
  virtual bool attention_sums_qkv_biases(const AttnShape& s) const {
    (void)s;
    return false;
  }

  // ---- Classifier ----
  // The classifier's product and loss in a pass with targets and no teacher: logits[N, V] =
  // x[N, K] w[V, K]^T under the recipe, then classifier_loss, with dlogits = the logits when
  // `training`. After a training pass, classifier_backward must be the next call that reads the
  // logits' gradient: a backend may keep it in memory of its own until then (the CUDA backend
  // keeps it in rows padded to a multiple of 8, as its products take them), and `logits` then
  // holds neither the logits nor their gradient. After a pass without training, `logits` holds
  // the logits.
  virtual void classifier_forward(Buf logits, Buf losses, Buf x, Buf w, Buf targets, int64_t n,
                                  int64_t k, int64_t v, bool training, float dloss,
                                  const Recipe& recipe, SrKey key) {
    matmul_forward(logits, x, w, {}, n, k, v, recipe, key);
    classifier_loss(losses, training ? logits : Buf{}, logits, targets, n, v, dloss);
  }
  // dx[N, K] = dlogits w and dw[V, K] += dlogits^T x for the gradient that the last training
  // classifier_forward (or classifier_loss or distillation_loss into `dlogits`) left.
  virtual void classifier_backward(Buf dx, Buf dw, Buf dlogits, Buf x, Buf w, int64_t n, int64_t k,
                                   int64_t v, const Recipe& recipe, SrKey key) {
    matmul_backward(dx, dw, {}, dlogits, x, w, n, k, v, false, recipe, key);
  }
  // losses[N] = -log softmax(logits)[targets]. With dlogits, also dlogits = (softmax - onehot) *
  // dloss, which may be the logits' own buffer (the logits are then gone).
  virtual void classifier_loss(Buf losses, Buf dlogits, Buf logits, Buf targets, int64_t n,
                               int64_t v, float dloss) = 0;
  // Distillation: losses[N] = KL(softmax(teacher) || softmax(logits)) per row, in nats, with
  // teacher [N, V] another model's logits in this backend's memory (float32 or bfloat16, as
  // logits). With dlogits, also dlogits = (softmax(logits) - softmax(teacher)) * dloss, which may
  // be the logits' own buffer.
  virtual void distillation_loss(Buf losses, Buf dlogits, Buf logits, Buf teacher, int64_t n,
                                 int64_t v, float dloss) = 0;

  // ---- Optimizer ----
  // sqrt(sum of squares), in a fixed order; waits for the work before it.
  virtual double norm(Buf x) = 0;
  virtual void scale(Buf x, float factor) = 0;
  virtual void adamw(Buf params, Buf grads, Buf m, Buf v, Buf decay_mask, const AdamWStep& s) = 0;

  // The first error an op met since the last call, cleared by the call; "" when none. Ops
  // return nothing themselves, since a device reports its errors late; the model asks once per
  // pass, and a pass with an error returns it instead of a result.
  virtual std::string take_error() = 0;
};

}  // namespace mx::nn
