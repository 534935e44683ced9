// Element-wise ops: GELU, SwiGLU, residual add, rotary embedding (see layers.h).
#include <cmath>

#include "mx/core/half.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/nn/cpu/layers.h"

namespace mx::nn::cpu {
namespace {

inline float maybe_bf16(float v, bool bf16) {
  return bf16 ? round_to_bf16(v) : v;
}

constexpr int64_t kGrain = 4096;
const float kGeluScale = std::sqrt(2.0f / 3.14159265358979f);

template <typename Fn>
void elementwise(int64_t count, int threads, Fn fn) {
  mx::cpu::parallel_for(count, kGrain, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i);
  });
}

}  // namespace

void gelu_forward(float* out, const float* x, int64_t count, bool bf16, int threads) {
  elementwise(count, threads, [&](int64_t i) {
    const float u = x[i];
    const float cube = 0.044715f * u * u * u;
    out[i] = maybe_bf16(0.5f * u * (1.0f + std::tanh(kGeluScale * (u + cube))), bf16);
  });
}

// d/dx = 0.5 (1 + tanh(a)) + 0.5 x sech^2(a) s (1 + 3 * 0.044715 x^2), a = s (x + 0.044715 x^3)
void gelu_backward(float* dx, const float* x, const float* dout, int64_t count, int threads) {
  elementwise(count, threads, [&](int64_t i) {
    const float u = x[i];
    const float a = kGeluScale * (u + 0.044715f * u * u * u);
    const float th = std::tanh(a);
    const float sech2 = 1.0f - th * th;
    const float grad =
        0.5f * (1.0f + th) + 0.5f * u * sech2 * kGeluScale * (1.0f + 3.0f * 0.044715f * u * u);
    dx[i] += grad * dout[i];
  });
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t count, bool bf16,
                    int threads) {
  elementwise(count, threads, [&](int64_t i) {
    const float g = gate[i];
    out[i] = maybe_bf16(g / (1.0f + std::exp(-g)) * up[i], bf16);
  });
}

// silu'(g) = sig(g) (1 + g (1 - sig(g)))
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t count, int threads) {
  elementwise(count, threads, [&](int64_t i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    dup[i] += dout[i] * g * sig;
  });
}

void residual_forward(float* out, const float* a, const float* b, int64_t count, bool bf16,
                      int threads) {
  elementwise(count, threads, [&](int64_t i) { out[i] = maybe_bf16(a[i] + b[i], bf16); });
}

void residual_backward(float* da, float* db, const float* dout, int64_t count, int threads) {
  elementwise(count, threads, [&](int64_t i) {
    da[i] += dout[i];
    db[i] += dout[i];
  });
}

namespace {

// Rotates each pair by +angle (sign 1) or -angle (sign -1).
void rope_rotate(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                 float sign, bool bf16, int threads) {
  mx::cpu::parallel_for(n, 8, threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float pos = float(first_position + r % t);
      for (int64_t i = 0; i < hs; i += 2) {
        const float theta = 1.0f / std::pow(10000.0f, float(i) / float(hs));
        const float angle = pos * theta;
        const float cs = std::cos(angle), sn = sign * std::sin(angle);
        for (int64_t h = 0; h < heads; ++h) {
          float* p = x + (r * heads + h) * hs + i;
          const float a = p[0], b = p[1];
          p[0] = maybe_bf16(a * cs - b * sn, bf16);
          p[1] = maybe_bf16(a * sn + b * cs, bf16);
        }
      }
    }
  });
}

}  // namespace

void rope_forward(float* x, int64_t n, int64_t t, int64_t heads, int64_t hs, int64_t first_position,
                  bool bf16, int threads) {
  rope_rotate(x, n, t, heads, hs, first_position, 1.0f, bf16, threads);
}

void rope_backward(float* dx, int64_t n, int64_t t, int64_t heads, int64_t hs, int threads) {
  rope_rotate(dx, n, t, heads, hs, 0, -1.0f, false, threads);
}

}  // namespace mx::nn::cpu
