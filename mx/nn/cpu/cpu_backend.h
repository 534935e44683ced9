// The CPU backend: mx/nn/cpu/layers.h and mx/nn/cpu/matmul.h behind the Backend interface.
#pragma once

#include "mx/nn/backend.h"
#include "mx/nn/cpu/matmul.h"

namespace mx::nn {

class CpuBackend : public Backend {
 public:
  // threads: for the layer ops (0: all hardware threads). Results do not depend on it.
  explicit CpuBackend(int threads = 0) : threads_(threads) {}
  std::string_view name() const override { return "cpu"; }
  void zero(float* x, int64_t count) override;
  void matmul_forward(float* y, const float* x, const float* w, const float* bias, int64_t m,
                      int64_t k, int64_t n, const Recipe& recipe, uint64_t stream) override;
  void matmul_backward(float* dx, float* dw, float* dbias, const float* dy, const float* x,
                       const float* w, int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                       uint64_t stream) override;
  void embedding_forward(float* out, const uint32_t* tokens, const float* wte, const float* wpe,
                         int64_t n, int64_t t, int64_t c) override;
  void embedding_backward(float* dwte, float* dwpe, const float* dout, const uint32_t* tokens,
                          int64_t n, int64_t t, int64_t c) override;
  void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                         const float* b, int64_t n, int64_t c, bool bf16) override;
  void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                          const float* w, const float* mean, const float* rstd, int64_t n,
                          int64_t c) override;
  void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n,
                       int64_t c, bool bf16) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                        const float* rstd, int64_t n, int64_t c) override;
  void gelu_forward(float* out, const float* x, int64_t count, bool bf16) override;
  void gelu_backward(float* dx, const float* x, const float* dout, int64_t count) override;
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t count,
                      bool bf16) override;
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                       const float* up, int64_t count) override;
  void residual_forward(float* out, const float* a, const float* b, int64_t count,
                        bool bf16) override;
  void residual_backward(float* da, float* db, const float* dout, int64_t count) override;
  void rope_forward(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs, bool bf16) override;
  void rope_backward(float* dx, int64_t n, int64_t t, int64_t heads, int64_t hs) override;
  void attention_forward(float* out, float* att, const float* q, const float* k, const float* v,
                         const AttentionShape& s, const Recipe& recipe, uint64_t stream) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                          const float* k, const float* v, const float* att, const AttentionShape& s,
                          const Recipe& recipe, uint64_t stream) override;
  float crossentropy_forward(float* probs, float* losses, const float* logits,
                             const uint32_t* targets, int64_t n, int64_t v) override;
  void crossentropy_backward(float* dlogits, const float* probs, const uint32_t* targets, int64_t n,
                             int64_t v) override;
  std::string take_error() override { return std::move(error_); }

 private:
  void record(std::string error) {
    if (error_.empty()) error_ = std::move(error);
  }

  int threads_;
  cpu::MatmulScratch scratch_;
  std::string error_;
};

}  // namespace mx::nn
