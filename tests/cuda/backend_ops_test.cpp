// The CUDA backend's single ops against double precision or the CPU backend: the classifier's
// and distillation's losses, the classifier's padding copies, LayerNorm over bfloat16 vectors and
// the bias gradient's column sums. Every test skips where no GPU is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "mx/core/half.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/cuda/ops.h"
#include "mx/nn/recipe.h"
#include "tests/cuda/backend_test_support.h"
#include "tests/cuda/skip_without_gpu.h"

namespace mx::nn {
namespace {

// Distillation's loss, KL(softmax(teacher) || softmax(logits)) per row, and its gradient in
// place of the logits, against double precision, for a student near its teacher.
TEST(CudaBackend, DistillationLossMatchesADoublePrecisionKlDivergence) {
  SKIP_WITHOUT_GPU();
  for (const int64_t v : {int64_t{256}, int64_t{50257}}) {
    SCOPED_TRACE(::testing::Message() << "vocabulary " << v);
    const int64_t n = 5;
    std::mt19937 rng{uint32_t(v + 1)};
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<uint16_t> logits(size_t(n * v)), teacher(size_t(n * v));
    for (size_t i = 0; i < logits.size(); ++i) {
      teacher[i] = float_to_bf16(normal(rng));
      // A student near its teacher, as in a finetune: the gradient is a small difference.
      logits[i] = float_to_bf16(bf16_to_float(teacher[i]) + 0.3f * normal(rng));
    }
    void *d_logits = nullptr, *d_teacher = nullptr;
    float* d_losses = nullptr;
    ASSERT_EQ(cudaMalloc(&d_logits, logits.size() * 2), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_teacher, teacher.size() * 2), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&d_losses, size_t(n) * 4), cudaSuccess);
    cudaMemcpy(d_logits, logits.data(), logits.size() * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(d_teacher, teacher.data(), teacher.size() * 2, cudaMemcpyHostToDevice);
    const float dloss = 1.0f / float(n);
    // In place, as the model calls it.
    cuda::distillation_loss(d_losses, d_logits, d_logits, d_teacher, n, v, dloss, true, nullptr);
    std::vector<float> losses(static_cast<size_t>(n));
    std::vector<uint16_t> grads(logits.size());
    ASSERT_EQ(cudaMemcpy(losses.data(), d_losses, size_t(n) * 4, cudaMemcpyDeviceToHost),
              cudaSuccess);
    cudaMemcpy(grads.data(), d_logits, grads.size() * 2, cudaMemcpyDeviceToHost);
    cudaFree(d_logits), cudaFree(d_teacher), cudaFree(d_losses);
    for (int64_t i = 0; i < n; ++i) {
      const uint16_t* s = logits.data() + i * v;
      const uint16_t* t = teacher.data() + i * v;
      double s_max = -INFINITY, t_max = -INFINITY, s_sum = 0, t_sum = 0;
      for (int64_t j = 0; j < v; ++j) {
        s_max = std::max(s_max, double(bf16_to_float(s[j])));
        t_max = std::max(t_max, double(bf16_to_float(t[j])));
      }
      for (int64_t j = 0; j < v; ++j) {
        s_sum += std::exp(double(bf16_to_float(s[j])) - s_max);
        t_sum += std::exp(double(bf16_to_float(t[j])) - t_max);
      }
      double kl = 0;
      std::vector<double> p(static_cast<size_t>(v)), q(static_cast<size_t>(v));
      for (int64_t j = 0; j < v; ++j) {
        const double log_p = double(bf16_to_float(s[j])) - s_max - std::log(s_sum);
        const double log_q = double(bf16_to_float(t[j])) - t_max - std::log(t_sum);
        p[size_t(j)] = std::exp(log_p), q[size_t(j)] = std::exp(log_q);
        kl += q[size_t(j)] * (log_q - log_p);
      }
      EXPECT_NEAR(losses[size_t(i)], kl, 1e-4 * std::max(1.0, kl)) << "row " << i;
      int wrong = 0;
      for (int64_t j = 0; j < v; ++j) {
        const double want = (p[size_t(j)] - q[size_t(j)]) * dloss;
        const double got = bf16_to_float(grads[size_t(i * v + j)]);
        // bfloat16 rounding of a float32 difference of two float32 probabilities.
        const double allowed =
            std::ldexp(std::fabs(want), -7) + 1e-6 * (p[size_t(j)] + q[size_t(j)]) * dloss + 1e-30;
        if (std::fabs(got - want) > allowed) ++wrong;
      }
      EXPECT_EQ(wrong, 0) << "row " << i;
    }
  }
}

// LayerNorm over bfloat16 rows of whole 16-byte vectors (widths 256 V: GPT-2's) against the CPU
// over the same values in float32: the output within a bfloat16 rounding, dx (added to what it
// held) within one, and the weight and bias gradients, float32 sums over 100 rows (one whole
// block of 64 and a part) and over 2100 (33 blocks, more than the final sums' 32 runs), to
// float32 summation order; and the column sums of dx as updated (the residual product's bias
// gradient), against the sums of the dx each backend wrote.
TEST(CudaBackend, LayerNormOverWholeVectorsMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const int64_t n : {int64_t{100}, int64_t{2100}}) {
    for (const int64_t c : {int64_t{256}, int64_t{512}, int64_t{768}, int64_t{1024}}) {
      SCOPED_TRACE(::testing::Message() << n << " rows, width " << c);
      bool ok = false;
      auto dev = gpu(BufType::kBF16, &ok);
      if (!ok) return;
      CpuBackend cpu;
      std::mt19937 rng{uint32_t(c)};
      std::normal_distribution<float> normal(0.0f, 1.0f);
      auto values = [&](int64_t count, float scale, float offset, bool bf16_exact) {
        std::vector<float> v(static_cast<size_t>(count));
        for (float& x : v) {
          x = offset + scale * normal(rng);
          if (bf16_exact) x = bf16_to_float(float_to_bf16(x));
        }
        return v;
      };
      const std::vector<float> x = values(n * c, 2.0f, 0.5f, true),
                               dout = values(n * c, 1.0f, 0, true);
      const std::vector<float> dx0 = values(n * c, 0.1f, 0, true);
      const std::vector<float> w = values(c, 0.3f, 1.0f, false), b = values(c, 0.2f, 0, false);
      struct Result {
        std::vector<float> out, dx, dw, db, dx_sums;
      };
      auto run = [&](Backend& be, BufType act) {
        const Buf xb = upload(be, act, x), doutb = upload(be, act, dout),
                  dxb = upload(be, act, dx0);
        const Buf wb = upload(be, BufType::kF32, w), bb = upload(be, BufType::kF32, b);
        const Buf out = be.alloc(act, n * c), mean = be.alloc(BufType::kF32, n),
                  rstd = be.alloc(BufType::kF32, n), dw = be.alloc(BufType::kF32, c),
                  db = be.alloc(BufType::kF32, c), dx_sums = be.alloc(BufType::kF32, c);
        be.zero(dw);
        be.zero(db);
        be.zero(dx_sums);
        be.layernorm_forward(out, mean, rstd, xb, wb, bb, n, c, false);
        be.layernorm_backward(dxb, dw, db, dx_sums, doutb, xb, wb, mean, rstd, n, c);
        EXPECT_EQ(be.take_error(), "");
        return Result{download(be, out), download(be, dxb), download(be, dw), download(be, db),
                      download(be, dx_sums)};
      };
      const Result want = run(cpu, BufType::kF32), got = run(*dev, BufType::kBF16);
      // The largest difference, relative to the value where it exceeds 1.
      auto worst = [](const std::vector<float>& a, const std::vector<float>& b) {
        double gap = 0;
        for (size_t i = 0; i < a.size(); ++i) {
          const double d = std::fabs(double(a[i]) - b[i]);
          gap = std::max(gap, d / std::max(1.0, std::fabs(double(b[i]))));
        }
        return gap;
      };
      EXPECT_LT(worst(got.out, want.out), 1.0 / 128);
      EXPECT_LT(worst(got.dx, want.dx), 1.0 / 128);
      EXPECT_LT(rel_diff(got.dw.data(), want.dw.data(), c), 1e-5);
      EXPECT_LT(rel_diff(got.db.data(), want.db.data(), c), 1e-5);
      for (const Result* r : {&want, &got}) {
        for (int64_t j = 0; j < c; ++j) {
          double sum = 0, magnitude = 0;
          for (int64_t i = 0; i < n; ++i) {
            sum += r->dx[size_t(i * c + j)];
            magnitude += std::fabs(r->dx[size_t(i * c + j)]);
          }
          ASSERT_NEAR(r->dx_sums[size_t(j)], sum, 1e-5 * magnitude)
              << (r == &got ? "GPU" : "CPU") << ", column " << j;
        }
      }
    }
  }
}

// The bias gradient (a linear layer's backward with neither dx nor dW asked) is each column's sum
// over every row, to float32 rounding: widths of whole 16-byte vectors and not, rows ending a
// chunk of the column sums (32 or 64 rows) short, and more chunks than the final sums' 32 runs
// (2080 rows: 65 chunks of 32, 33 of 64), so that a run adds several.
TEST(CudaBackend, BiasGradientSumsEveryRowOfItsColumn) {
  SKIP_WITHOUT_GPU();
  bool ok = false;
  auto dev = gpu(BufType::kBF16, &ok);
  if (!ok) return;
  for (const int64_t m : {int64_t{300}, int64_t{2080}}) {
    for (const int64_t n : {int64_t{8}, int64_t{200}, int64_t{3072}, int64_t{1001}}) {
      SCOPED_TRACE(::testing::Message() << m << " rows, width " << n);
      std::mt19937 rng{uint32_t(n)};
      std::normal_distribution<float> normal(0.5f, 2.0f);
      std::vector<uint16_t> dy(size_t(m * n));
      for (uint16_t& x : dy) x = float_to_bf16(normal(rng));
      const Buf dyb = dev->alloc(BufType::kBF16, m * n), dbias = dev->alloc(BufType::kF32, n);
      dev->upload(dyb, dy.data());
      dev->zero(dbias);
      dev->matmul_backward({}, {}, dbias, dyb, {}, {}, m, 16, n, false, *recipe_preset("bf16"), {});
      EXPECT_EQ(dev->take_error(), "");
      std::vector<float> got(static_cast<size_t>(n));
      dev->download(got.data(), dbias);
      int wrong = 0;
      for (int64_t j = 0; j < n; ++j) {
        double exact = 0, magnitude = 0;
        for (int64_t i = 0; i < m; ++i) {
          const double x = bf16_to_float(dy[size_t(i * n + j)]);
          exact += x;
          magnitude += std::fabs(x);
        }
        wrong += std::fabs(got[size_t(j)] - exact) > 1e-5 * magnitude;
      }
      EXPECT_EQ(wrong, 0);
      dev->release(dyb);
      dev->release(dbias);
    }
  }
}

// The classifier's padding copies: every element of every row moves, whatever the alignment of
// either stride, and nothing past a row's width is written (the padding keeps its zeros).
TEST(CudaBackend, RowCopiesMoveEveryElementBetweenOddStrides) {
  SKIP_WITHOUT_GPU();
  struct Case {
    int64_t width, src_stride, dst_stride, rows;
  };
  for (const int bytes : {2, 4}) {
    for (const Case c : {Case{1001, 1001, 1008, 37}, Case{1001, 1008, 1001, 37},
                         Case{7, 7, 8, 70000}, Case{3000, 3003, 3001, 5}}) {
      SCOPED_TRACE(::testing::Message() << bytes << "-byte elements, width " << c.width << ", "
                                        << c.src_stride << " -> " << c.dst_stride);
      const int64_t src_n = c.rows * c.src_stride, dst_n = c.rows * c.dst_stride;
      // Nonzero elements that vary with the index: the low bytes of an odd hash of it.
      std::vector<uint8_t> src_bytes(static_cast<size_t>(src_n * bytes));
      std::vector<uint8_t> got(static_cast<size_t>(dst_n * bytes));
      for (int64_t i = 0; i < src_n; ++i) {
        const uint32_t x = uint32_t(i * 2654435761u) | 1u;
        std::memcpy(&src_bytes[size_t(i * bytes)], &x, size_t(bytes));
      }
      void *d_src = nullptr, *d_dst = nullptr;
      ASSERT_EQ(cudaMalloc(&d_src, src_bytes.size()), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&d_dst, got.size()), cudaSuccess);
      cudaMemcpy(d_src, src_bytes.data(), src_bytes.size(), cudaMemcpyHostToDevice);
      cudaMemset(d_dst, 0, got.size());
      cuda::copy_rows(d_dst, c.dst_stride, d_src, c.src_stride, c.width, c.rows, bytes, nullptr);
      ASSERT_EQ(cudaMemcpy(got.data(), d_dst, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      cudaFree(d_src);
      cudaFree(d_dst);
      int64_t wrong = 0;
      for (int64_t r = 0; r < c.rows; ++r) {
        for (int64_t j = 0; j < c.dst_stride; ++j) {
          const uint8_t* g = &got[size_t((r * c.dst_stride + j) * bytes)];
          const bool zero = std::all_of(g, g + bytes, [](uint8_t b) { return b == 0; });
          if (j >= c.width) {
            wrong += zero ? 0 : 1;
          } else {
            wrong += std::memcmp(g, &src_bytes[size_t((r * c.src_stride + j) * bytes)],
                                 size_t(bytes)) == 0
                         ? 0
                         : 1;
          }
        }
      }
      EXPECT_EQ(wrong, 0);
    }
  }
}

// Rows that lie further apart than the vocabulary (the padded rows of the classifier's
// products): the losses and gradients of dense rows, whatever the padding held, and the
// gradient's padding set to zero.
TEST(CudaBackend, ClassifierLossOverPaddedRowsEqualsItOverDenseRows) {
  SKIP_WITHOUT_GPU();
  for (const bool bf16 : {true, false}) {
    for (const int64_t v : {int64_t{1001}, int64_t{50257}}) {
      SCOPED_TRACE(::testing::Message() << (bf16 ? "bfloat16" : "float32") << ", vocabulary " << v);
      const int64_t n = 3, stride = (v + 7) / 8 * 8, e = bf16 ? 2 : 4;
      std::mt19937 rng{uint32_t(v)};
      std::normal_distribution<float> normal(0.0f, 3.0f);
      std::vector<float> values(size_t(n * v));
      for (float& x : values) x = bf16_to_float(float_to_bf16(normal(rng)));
      // Dense rows, and the same rows at `stride` with 7.0 in the padding.
      std::vector<uint8_t> dense(size_t(n * v * e)), padded(size_t(n * stride * e));
      auto put = [&](std::vector<uint8_t>& buf, int64_t i, float x) {
        if (bf16) {
          const uint16_t h = float_to_bf16(x);
          std::memcpy(&buf[size_t(i * e)], &h, 2);
        } else {
          std::memcpy(&buf[size_t(i * e)], &x, 4);
        }
      };
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = 0; j < stride; ++j) {
          if (j < v) put(dense, r * v + j, values[size_t(r * v + j)]);
          put(padded, r * stride + j, j < v ? values[size_t(r * v + j)] : 7.0f);
        }
      }
      std::vector<uint32_t> targets;
      for (int64_t i = 0; i < n; ++i) targets.push_back(uint32_t((i * 7919 + 13) % v));
      void *d_dense = nullptr, *d_padded = nullptr;
      float* d_losses = nullptr;
      uint32_t* d_targets = nullptr;
      ASSERT_EQ(cudaMalloc(&d_dense, dense.size()), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&d_padded, padded.size()), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&d_losses, size_t(2 * n) * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&d_targets, size_t(n) * 4), cudaSuccess);
      cudaMemcpy(d_dense, dense.data(), dense.size(), cudaMemcpyHostToDevice);
      cudaMemcpy(d_padded, padded.data(), padded.size(), cudaMemcpyHostToDevice);
      cudaMemcpy(d_targets, targets.data(), size_t(n) * 4, cudaMemcpyHostToDevice);
      cuda::classifier_loss(d_losses, d_dense, d_dense, d_targets, n, v, 0.25f, bf16, nullptr);
      cuda::classifier_loss(d_losses + n, d_padded, d_padded, d_targets, n, v, 0.25f, bf16, nullptr,
                            stride);
      std::vector<float> losses(size_t(2 * n));
      ASSERT_EQ(cudaMemcpy(losses.data(), d_losses, losses.size() * 4, cudaMemcpyDeviceToHost),
                cudaSuccess);
      cudaMemcpy(dense.data(), d_dense, dense.size(), cudaMemcpyDeviceToHost);
      cudaMemcpy(padded.data(), d_padded, padded.size(), cudaMemcpyDeviceToHost);
      cudaFree(d_dense), cudaFree(d_padded), cudaFree(d_losses), cudaFree(d_targets);
      // A bfloat16 row is summed in pieces that depend on its alignment, so float32 sums may
      // round apart: one unit of bfloat16 in a gradient, a few of float32 in a loss.
      for (int64_t r = 0; r < n; ++r) {
        EXPECT_NEAR(losses[size_t(n + r)], losses[size_t(r)],
                    1e-6 * std::max(1.0f, std::fabs(losses[size_t(r)])));
      }
      auto get = [&](const std::vector<uint8_t>& buf, int64_t i) {
        if (!bf16) {
          float x;
          std::memcpy(&x, &buf[size_t(i * e)], 4);
          return x;
        }
        uint16_t h;
        std::memcpy(&h, &buf[size_t(i * e)], 2);
        return bf16_to_float(h);
      };
      int64_t wrong = 0;
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t j = 0; j < stride; ++j) {
          const float got = get(padded, r * stride + j);
          if (j >= v) {
            wrong += got == 0.0f && !std::signbit(got) ? 0 : 1;
            continue;
          }
          const float want = get(dense, r * v + j);
          wrong += std::fabs(got - want) <= std::ldexp(std::fabs(want), bf16 ? -7 : -20) ? 0 : 1;
        }
      }
      EXPECT_EQ(wrong, 0);
    }
  }
}

// The classifier's loss over n bfloat16 rows of v logits on the GPU, its gradient written over
// the logits as in training, against a double-precision softmax cross-entropy.
void expect_classifier_loss_matches_double_precision(const std::vector<uint16_t>& logits, int64_t n,
                                                     int64_t v,
                                                     const std::vector<uint32_t>& targets) {
  void* d_logits = nullptr;
  float* d_losses = nullptr;
  uint32_t* d_targets = nullptr;
  ASSERT_EQ(cudaMalloc(&d_logits, logits.size() * 2), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_losses, size_t(n) * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_targets, size_t(n) * 4), cudaSuccess);
  cudaMemcpy(d_logits, logits.data(), logits.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(d_targets, targets.data(), size_t(n) * 4, cudaMemcpyHostToDevice);
  const float dloss = 1.0f / float(n);
  cuda::classifier_loss(d_losses, d_logits, d_logits, d_targets, n, v, dloss, true, nullptr);
  std::vector<float> losses(static_cast<size_t>(n));
  std::vector<uint16_t> grads(logits.size());
  ASSERT_EQ(cudaMemcpy(losses.data(), d_losses, size_t(n) * 4, cudaMemcpyDeviceToHost),
            cudaSuccess);
  cudaMemcpy(grads.data(), d_logits, grads.size() * 2, cudaMemcpyDeviceToHost);
  cudaFree(d_logits), cudaFree(d_losses), cudaFree(d_targets);
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t* row = logits.data() + i * v;
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < v; ++j) mx = std::max(mx, double(bf16_to_float(row[j])));
    for (int64_t j = 0; j < v; ++j) sum += std::exp(double(bf16_to_float(row[j])) - mx);
    const double loss = std::log(sum) - (double(bf16_to_float(row[targets[size_t(i)]])) - mx);
    EXPECT_NEAR(losses[size_t(i)], loss, 1e-5 * std::max(1.0, loss)) << "row " << i;
    int wrong = 0;
    for (int64_t j = 0; j < v; ++j) {
      const double p = std::exp(double(bf16_to_float(row[j])) - mx) / sum;
      const double want = (p - (j == int64_t(targets[size_t(i)]) ? 1.0 : 0.0)) * dloss;
      const double got = bf16_to_float(grads[size_t(i * v + j)]);
      // Both are bfloat16 roundings of nearly the same value: at most one unit apart.
      if (std::fabs(got - want) > std::ldexp(std::fabs(want), -7) + 1e-30) ++wrong;
    }
    EXPECT_EQ(wrong, 0) << "row " << i;
  }
}

// The classifier's softmax cross-entropy on bfloat16 logits, against double precision: rows of
// odd lengths start anywhere relative to 16-byte boundaries (the staged kernel's vector loads),
// and a row too long for shared memory takes the two-pass kernel. The gradient overwrites the
// logits, as in training.
TEST(CudaBackend, ClassifierLossMatchesADoublePrecisionSoftmax) {
  SKIP_WITHOUT_GPU();
  for (const int64_t v : {int64_t{256}, int64_t{1001}, int64_t{50257}, int64_t{90001}}) {
    SCOPED_TRACE(::testing::Message() << "vocabulary " << v);
    const int64_t n = 5;
    std::mt19937 rng{uint32_t(v)};
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<uint16_t> logits(size_t(n * v));
    for (uint16_t& x : logits) x = float_to_bf16(normal(rng));
    std::vector<uint32_t> targets;
    for (int64_t i = 0; i < n; ++i) targets.push_back(uint32_t((i * 7919 + 13) % v));
    expect_classifier_loss_matches_double_precision(logits, n, v, targets);
  }
}

// Logits of -inf (a vocabulary masked out) add nothing to a row's sum and get a gradient of
// zero, however they fall among the kernel's loads: a row's first half (whole 16-byte vectors
// and the elements before the first boundary), every third element, or all but two elements.
TEST(CudaBackend, ClassifierLossGivesNegativeInfinityLogitsNoWeight) {
  SKIP_WITHOUT_GPU();
  const uint16_t minus_inf = float_to_bf16(-INFINITY);
  for (const int64_t v : {int64_t{1001}, int64_t{50257}}) {
    SCOPED_TRACE(::testing::Message() << "vocabulary " << v);
    const int64_t n = 3;
    std::mt19937 rng{uint32_t(v + 2)};
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<uint16_t> logits(size_t(n * v));
    for (uint16_t& x : logits) x = float_to_bf16(normal(rng));
    std::vector<uint32_t> targets = {uint32_t(v - 1), uint32_t(1), uint32_t(v / 2)};
    for (int64_t j = 0; j < v; ++j) {
      if (j < v / 2) logits[size_t(j)] = minus_inf;
      if (j % 3 == 0) logits[size_t(v + j)] = minus_inf;
      if (j != v / 2 && j != 7) logits[size_t(2 * v + j)] = minus_inf;
    }
    expect_classifier_loss_matches_double_precision(logits, n, v, targets);
  }
}

}  // namespace
}  // namespace mx::nn
