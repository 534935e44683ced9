#include "mx/nn/cpu/cpu_backend.h"

#include <algorithm>

namespace mx::nn {

void CpuBackend::zero(float* x, int64_t count) {
  std::fill(x, x + count, 0.0f);
}

void CpuBackend::matmul_forward(float* y, const float* x, const float* w, const float* bias,
                                int64_t m, int64_t k, int64_t n, const Recipe& recipe,
                                uint64_t stream) {
  record(cpu::matmul_forward(y, x, w, bias, m, k, n, recipe, stream, scratch_));
}

void CpuBackend::matmul_backward(float* dx, float* dw, float* dbias, const float* dy,
                                 const float* x, const float* w, int64_t m, int64_t k, int64_t n,
                                 const Recipe& recipe, uint64_t stream) {
  record(cpu::matmul_backward(dx, dw, dbias, dy, x, w, m, k, n, recipe, stream, scratch_));
}

void CpuBackend::embedding_forward(float* out, const uint32_t* tokens, const float* wte,
                                   const float* wpe, int64_t n, int64_t t, int64_t c) {
  cpu::embedding_forward(out, tokens, wte, wpe, n, t, c);
}

void CpuBackend::embedding_backward(float* dwte, float* dwpe, const float* dout,
                                    const uint32_t* tokens, int64_t n, int64_t t, int64_t c) {
  cpu::embedding_backward(dwte, dwpe, dout, tokens, n, t, c);
}

void CpuBackend::layernorm_forward(float* out, float* mean, float* rstd, const float* x,
                                   const float* w, const float* b, int64_t n, int64_t c,
                                   bool bf16) {
  cpu::layernorm_forward(out, mean, rstd, x, w, b, n, c, bf16, threads_);
}

void CpuBackend::layernorm_backward(float* dx, float* dw, float* db, const float* dout,
                                    const float* x, const float* w, const float* mean,
                                    const float* rstd, int64_t n, int64_t c) {
  cpu::layernorm_backward(dx, dw, db, dout, x, w, mean, rstd, n, c, threads_);
}

void CpuBackend::rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n,
                                 int64_t c, bool bf16) {
  cpu::rmsnorm_forward(out, rstd, x, w, n, c, bf16, threads_);
}

void CpuBackend::rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x,
                                  const float* w, const float* rstd, int64_t n, int64_t c) {
  cpu::rmsnorm_backward(dx, dw, dout, x, w, rstd, n, c, threads_);
}

void CpuBackend::gelu_forward(float* out, const float* x, int64_t count, bool bf16) {
  cpu::gelu_forward(out, x, count, bf16, threads_);
}

void CpuBackend::gelu_backward(float* dx, const float* x, const float* dout, int64_t count) {
  cpu::gelu_backward(dx, x, dout, count, threads_);
}

void CpuBackend::swiglu_forward(float* out, const float* gate, const float* up, int64_t count,
                                bool bf16) {
  cpu::swiglu_forward(out, gate, up, count, bf16, threads_);
}

void CpuBackend::swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                                 const float* up, int64_t count) {
  cpu::swiglu_backward(dgate, dup, dout, gate, up, count, threads_);
}

void CpuBackend::residual_forward(float* out, const float* a, const float* b, int64_t count,
                                  bool bf16) {
  cpu::residual_forward(out, a, b, count, bf16, threads_);
}

void CpuBackend::residual_backward(float* da, float* db, const float* dout, int64_t count) {
  cpu::residual_backward(da, db, dout, count, threads_);
}

void CpuBackend::rope_forward(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs,
                              bool bf16) {
  cpu::rope_forward(x, n, t, heads, hs, bf16, threads_);
}

void CpuBackend::rope_backward(float* dx, int64_t n, int64_t t, int64_t heads, int64_t hs) {
  cpu::rope_backward(dx, n, t, heads, hs, threads_);
}

void CpuBackend::attention_forward(float* out, float* att, const float* q, const float* k,
                                   const float* v, const AttentionShape& s, const Recipe& recipe,
                                   uint64_t stream) {
  record(cpu::attention_forward(out, att, q, k, v, s, recipe, stream, threads_));
}

void CpuBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                    const float* q, const float* k, const float* v,
                                    const float* att, const AttentionShape& s, const Recipe& recipe,
                                    uint64_t stream) {
  record(cpu::attention_backward(dq, dk, dv, dout, q, k, v, att, s, recipe, stream, threads_));
}

float CpuBackend::crossentropy_forward(float* probs, float* losses, const float* logits,
                                       const uint32_t* targets, int64_t n, int64_t v) {
  return cpu::crossentropy_forward(probs, losses, logits, targets, n, v, threads_);
}

void CpuBackend::crossentropy_backward(float* dlogits, const float* probs, const uint32_t* targets,
                                       int64_t n, int64_t v) {
  cpu::crossentropy_backward(dlogits, probs, targets, n, v, threads_);
}

}  // namespace mx::nn
