// The compute backend of the model: every op the model runs, over flat FP32 buffers that the
// backend can address (host memory for the CPU backend; a CUDA backend would take device
// pointers). The model (model.h) calls nothing else, so a new backend implements this struct.
//
// Semantics of each op are those of mx/nn/cpu/layers.h and mx/nn/cpu/matmul.h: backward ops
// accumulate (+=) into their gradient outputs; `bf16` rounds the outputs of forward vector
// ops to bfloat16; all matrix products (linear layers and attention) apply the recipe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mx/nn/cpu/layers.h"
#include "mx/nn/recipe.h"

namespace mx::nn {

using AttentionShape = cpu::AttentionShape;

struct Backend {
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  virtual void zero(float* x, int64_t count) = 0;

  // y[M,N] = x[M,K] W[N,K]^T (+ bias); dx += dy W, dw += dy^T x, dbias += colsum(dy).
  virtual void matmul_forward(float* y, const float* x, const float* w, const float* bias,
                              int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                              uint64_t stream) = 0;
  virtual void matmul_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                               const float* w, int64_t m, int64_t k, int64_t n,
                               const Recipe& recipe, uint64_t stream) = 0;

  virtual void embedding_forward(float* out, const uint32_t* tokens, const float* wte,
                                 const float* wpe, int64_t n, int64_t t, int64_t c) = 0;
  virtual void embedding_backward(float* dwte, float* dwpe, const float* dout,
                                  const uint32_t* tokens, int64_t n, int64_t t, int64_t c) = 0;

  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* x,
                                 const float* w, const float* b, int64_t n, int64_t c,
                                 bool bf16) = 0;
  virtual void layernorm_backward(float* dx, float* dw, float* db, const float* dout,
                                  const float* x, const float* w, const float* mean,
                                  const float* rstd, int64_t n, int64_t c) = 0;
  virtual void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n,
                               int64_t c, bool bf16) = 0;
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x,
                                const float* w, const float* rstd, int64_t n, int64_t c) = 0;

  virtual void gelu_forward(float* out, const float* x, int64_t count, bool bf16) = 0;
  virtual void gelu_backward(float* dx, const float* x, const float* dout, int64_t count) = 0;
  virtual void swiglu_forward(float* out, const float* gate, const float* up, int64_t count,
                              bool bf16) = 0;
  virtual void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                               const float* up, int64_t count) = 0;
  virtual void residual_forward(float* out, const float* a, const float* b, int64_t count,
                                bool bf16) = 0;
  virtual void residual_backward(float* da, float* db, const float* dout, int64_t count) = 0;
  virtual void rope_forward(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                            bool bf16) = 0;
  virtual void rope_backward(float* dx, int64_t n, int64_t t, int64_t heads, int64_t hs) = 0;

  virtual void attention_forward(float* out, float* att, const float* q, const float* k,
                                 const float* v, const AttentionShape& s, const Recipe& recipe,
                                 uint64_t stream) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v, const float* att,
                                  const AttentionShape& s, const Recipe& recipe,
                                  uint64_t stream) = 0;

  // Returns the mean loss (0 when targets is null: probs only).
  virtual float crossentropy_forward(float* probs, float* losses, const float* logits,
                                     const uint32_t* targets, int64_t n, int64_t v) = 0;
  virtual void crossentropy_backward(float* dlogits, const float* probs, const uint32_t* targets,
                                     int64_t n, int64_t v) = 0;

  // The first error an op met since the last call, cleared by the call; "" when none. Ops
  // return nothing themselves, since a device reports its errors late; the model asks once
  // per pass, and a pass with an error returns it instead of a result.
  virtual std::string take_error() = 0;
};

}  // namespace mx::nn
