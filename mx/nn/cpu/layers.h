// The CPU layers of the model, llm.c style: each op has a forward and a backward over flat
// row-major FP32 buffers; shapes are given in comments ([N, C] means N rows of C values).
//
// Conventions:
//   * Backward functions ACCUMULATE (+=) into every gradient they write (activation and
//     parameter gradients alike); callers zero the buffers first.
//   * `bf16` rounds each output of a forward vector op to bfloat16 (Recipe::bf16_vector_ops);
//     backward passes stay in FP32.
//   * `threads` is passed to mx::cpu::parallel_for (0: all hardware threads). Every output
//     element is computed by one thread in a fixed order, so results do not depend on it.
//   * N = B * T tokens; row n is position n % T of sequence n / T.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mx/nn/recipe.h"

namespace mx::nn::cpu {

// out[N, C] = wte[tokens[n], :] (+ wpe[n % T, :] when wpe is not null)
void embedding_forward(float* out, const uint32_t* tokens, const float* wte, const float* wpe,
                       int64_t n, int64_t t, int64_t c);
// dwte[V, C] += scatter of dout rows; dwpe[T, C] += (dwpe may be null). Serial in token order.
void embedding_backward(float* dwte, float* dwpe, const float* dout, const uint32_t* tokens,
                        int64_t n, int64_t t, int64_t c);

// out[N, C] = (x - mean) * rstd * w + b; saves mean[N], rstd[N]. eps = 1e-5.
void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, bool bf16, int threads);
// dx[N, C] +=, dw[C] +=, db[C] += (db may be null). dw/db sum rows in row order.
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                        const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                        int threads);

// out[N, C] = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); saves rstd[N]. eps = 1e-5.
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c,
                     bool bf16, int threads);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t c, int threads);

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). [count]
void gelu_forward(float* out, const float* x, int64_t count, bool bf16, int threads);
void gelu_backward(float* dx, const float* x, const float* dout, int64_t count, int threads);

// SwiGLU: out = silu(gate) * up, silu(g) = g / (1 + exp(-g)). [count]
void swiglu_forward(float* out, const float* gate, const float* up, int64_t count, bool bf16,
                    int threads);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t count, int threads);

// out[count] = a + b
void residual_forward(float* out, const float* a, const float* b, int64_t count, bool bf16,
                      int threads);
// da += dout, db += dout
void residual_backward(float* da, float* db, const float* dout, int64_t count, int threads);

// Rotary embedding, in place on x[N, heads, hs] (llama2.c convention): the pair
// (x[2i], x[2i+1]) of each head is rotated by angle pos * theta_i, theta_i = 10000^(-2i/hs),
// pos = first_position + n % T. The backward rotates the gradient back (R^T), in place.
void rope_forward(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                  bool bf16, int threads);
void rope_backward(float* dx, int64_t n, int64_t t, int64_t heads, int64_t hs, int threads);

// Causal self-attention with grouped-query heads.
//   q[B, T, nh, hs], k[B, P + T, nkv, hs], v[B, P + T, nkv, hs]; query head h reads kv head
//   h / (nh / nkv). out[B, T, nh, hs]; att[B, nh, T, P + T] saves the softmax probabilities.
//   P = past: with a key/value cache the queries are the last T of P + T positions (query i
//   sees keys 0 .. P + i); the backward takes P = 0 only.
//   `stream` seeds the stochastic-rounding streams of the casts (see attention.cpp for the
//   table of which recipe role casts which operand along which axis).
struct AttentionShape {
  int64_t b, t, nh, nkv, hs;
  int64_t past = 0;
};
//   Returns "" or the reason a cast failed (the outputs are then unspecified).
struct AttentionScratch {
  std::vector<std::vector<float>> casts;  // the cast operands of one pass
  std::vector<float> ds;                  // [B, nh, T, T]
};
std::string attention_forward(float* out, float* att, const float* q, const float* k,
                              const float* v, const AttentionShape& s, const Recipe& recipe,
                              uint64_t stream, int threads, AttentionScratch& scratch);
// dq, dk, dv +=. Recomputes nothing but the casts of the saved q, k, v, att.
std::string attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                               const float* k, const float* v, const float* att,
                               const AttentionShape& s, const Recipe& recipe, uint64_t stream,
                               int threads, AttentionScratch& scratch);

// Softmax cross-entropy. probs[N, V] = softmax(logits); losses[N] = -log probs[target].
// Returns the mean loss over the N tokens (summed in double, in order).
float crossentropy_forward(float* probs, float* losses, const float* logits,
                           const uint32_t* targets, int64_t n, int64_t v, int threads);
// dlogits[N, V] += (probs - onehot(target)) * scale (1 / N for the mean loss)
void crossentropy_backward(float* dlogits, const float* probs, const uint32_t* targets, int64_t n,
                           int64_t v, float scale, int threads);
// losses[N] = KL(softmax(teacher) || softmax(logits)) in nats, summed in double per row; with
// dlogits (may be logits), dlogits[N, V] = (softmax(logits) - softmax(teacher)) * scale.
void distillation_loss(float* losses, float* dlogits, const float* logits, const float* teacher,
                       int64_t n, int64_t v, float scale, int threads);

}  // namespace mx::nn::cpu
