// Token (+ learned position) embedding and softmax cross-entropy (see layers.h).
#include <cmath>

#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/layers.h"

namespace mx::nn::cpu {

void embedding_forward(float* out, const uint32_t* tokens, const float* wte, const float* wpe,
                       int64_t n, int64_t t, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    const float* e = wte + int64_t(tokens[i]) * c;
    const float* p = wpe != nullptr ? wpe + (i % t) * c : nullptr;
    float* o = out + i * c;
    for (int64_t j = 0; j < c; ++j) o[j] = p != nullptr ? e[j] + p[j] : e[j];
  }
}

void embedding_backward(float* dwte, float* dwpe, const float* dout, const uint32_t* tokens,
                        int64_t n, int64_t t, int64_t c) {
  for (int64_t i = 0; i < n; ++i) {
    const float* g = dout + i * c;
    float* de = dwte + int64_t(tokens[i]) * c;
    for (int64_t j = 0; j < c; ++j) de[j] += g[j];
    if (dwpe != nullptr) {
      float* dp = dwpe + (i % t) * c;
      for (int64_t j = 0; j < c; ++j) dp[j] += g[j];
    }
  }
}

float crossentropy_forward(float* probs, float* losses, const float* logits,
                           const uint32_t* targets, int64_t n, int64_t v, int threads) {
  mx::cpu::parallel_for(n, 4, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* li = logits + i * v;
      float* pi = probs + i * v;
      float mx = li[0];
      for (int64_t j = 1; j < v; ++j) mx = std::fmax(mx, li[j]);
      float sum = 0.0f;
      for (int64_t j = 0; j < v; ++j) {
        pi[j] = std::exp(li[j] - mx);
        sum += pi[j];
      }
      const float inv = 1.0f / sum;
      for (int64_t j = 0; j < v; ++j) pi[j] *= inv;
      // -log p[target] from the logits, accurate even where p underflows.
      if (targets != nullptr) losses[i] = std::log(sum) - (li[targets[i]] - mx);
    }
  });
  if (targets == nullptr) return 0.0f;
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += losses[i];
  return float(total / double(n));
}

void crossentropy_backward(float* dlogits, const float* probs, const uint32_t* targets, int64_t n,
                           int64_t v, float scale, int threads) {
  mx::cpu::parallel_for(n, 4, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* pi = probs + i * v;
      float* di = dlogits + i * v;
      for (int64_t j = 0; j < v; ++j) {
        const float indicator = j == int64_t(targets[i]) ? 1.0f : 0.0f;
        di[j] += (pi[j] - indicator) * scale;
      }
    }
  });
}

}  // namespace mx::nn::cpu
