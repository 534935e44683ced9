// LayerNorm and RMSNorm, forward and backward (see layers.h).
#include <cmath>

#include "mx/core/half.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/layers.h"
#include "mx/nn/model_config.h"

namespace mx::nn::cpu {
namespace {

constexpr float kEps = float(kNormEpsilon);

inline float maybe_bf16(float v, bool bf16) {
  return bf16 ? round_to_bf16(v) : v;
}

// Row ranges for the per-row loops: small enough to balance two threads on tiny models.
constexpr int64_t kRowGrain = 8;

// dw[j] += sum_i dout[i,j] * xhat[i,j]; db[j] += sum_i dout[i,j], rows in order, threaded over
// columns so the sums do not depend on the thread count. xhat(i, j) is computed on the fly.
template <typename XHat>
void column_sums(float* dw, float* db, const float* dout, int64_t n, int64_t c, int threads,
                 XHat xhat) {
  mx::cpu::parallel_for(c, 8, threads, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      float sw = 0.0f, sb = 0.0f;
      for (int64_t i = 0; i < n; ++i) {
        const float g = dout[i * c + j];
        sw += g * xhat(i, j);
        sb += g;
      }
      dw[j] += sw;
      if (db != nullptr) db[j] += sb;
    }
  });
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w,
                       const float* b, int64_t n, int64_t c, bool bf16, int threads) {
  mx::cpu::parallel_for(n, kRowGrain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * c;
      float m = 0.0f;
      for (int64_t j = 0; j < c; ++j) m += xi[j];
      m /= float(c);
      float var = 0.0f;
      for (int64_t j = 0; j < c; ++j) var += (xi[j] - m) * (xi[j] - m);
      var /= float(c);
      const float r = 1.0f / std::sqrt(var + kEps);
      float* oi = out + i * c;
      for (int64_t j = 0; j < c; ++j) {
        const float v = (xi[j] - m) * r * w[j] + (b != nullptr ? b[j] : 0.0f);
        oi[j] = maybe_bf16(v, bf16);
      }
      mean[i] = m;
      rstd[i] = r;
    }
  });
}

// With xhat = (x - mean) rstd and g = dout * w:
//   dx = rstd (g - mean(g) - xhat mean(g xhat))
void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x,
                        const float* w, const float* mean, const float* rstd, int64_t n, int64_t c,
                        int threads) {
  mx::cpu::parallel_for(n, kRowGrain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * c;
      const float* gi = dout + i * c;
      float mg = 0.0f, mgx = 0.0f;
      for (int64_t j = 0; j < c; ++j) {
        const float xhat = (xi[j] - mean[i]) * rstd[i];
        const float g = gi[j] * w[j];
        mg += g;
        mgx += g * xhat;
      }
      mg /= float(c);
      mgx /= float(c);
      float* dxi = dx + i * c;
      for (int64_t j = 0; j < c; ++j) {
        const float xhat = (xi[j] - mean[i]) * rstd[i];
        dxi[j] += rstd[i] * (gi[j] * w[j] - mg - xhat * mgx);
      }
    }
  });
  column_sums(dw, db, dout, n, c, threads,
              [&](int64_t i, int64_t j) { return (x[i * c + j] - mean[i]) * rstd[i]; });
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, int64_t n, int64_t c,
                     bool bf16, int threads) {
  mx::cpu::parallel_for(n, kRowGrain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * c;
      float ss = 0.0f;
      for (int64_t j = 0; j < c; ++j) ss += xi[j] * xi[j];
      const float r = 1.0f / std::sqrt(ss / float(c) + kEps);
      float* oi = out + i * c;
      for (int64_t j = 0; j < c; ++j) oi[j] = maybe_bf16(xi[j] * r * w[j], bf16);
      rstd[i] = r;
    }
  });
}

// out = x r w with r = (mean(x^2) + eps)^-1/2; with g = dout * w:
//   dx = r g - x r^3 mean(g x)
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t c, int threads) {
  mx::cpu::parallel_for(n, kRowGrain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * c;
      const float* gi = dout + i * c;
      const float r = rstd[i];
      float mgx = 0.0f;
      for (int64_t j = 0; j < c; ++j) mgx += gi[j] * w[j] * xi[j];
      mgx /= float(c);
      float* dxi = dx + i * c;
      for (int64_t j = 0; j < c; ++j) dxi[j] += r * gi[j] * w[j] - xi[j] * r * r * r * mgx;
    }
  });
  column_sums(dw, nullptr, dout, n, c, threads,
              [&](int64_t i, int64_t j) { return x[i * c + j] * rstd[i]; });
}

}  // namespace mx::nn::cpu
