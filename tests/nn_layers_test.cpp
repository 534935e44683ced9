// Gradient checks of every CPU layer (mx/nn/cpu/layers.h) against central finite differences.
//
// Each check uses the scalar L = sum_i y_i r_i (r fixed random), accumulated in double, so
// dL/dy = r feeds the backward. With step h, the central difference errs by
//   truncation  h^2 |L'''| / 6           (~1e-6 for h = 1e-3 and O(1) derivatives), and
//   rounding    2 * (float error of L) / (2h) ~ sqrt(N) * 2^-24 * |y| * |r| / h,
// about 1e-4 * sqrt(N) for h = 1e-3: some 2e-3 for the N <= 400 outputs here. The tolerance
// atol = 5e-3 plus rtol = 1e-2 of the analytic value stays above both; an index error or a
// missing term (an error of the size of the gradient itself, O(0.1..1)) fails it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "mx/nn/cpu/layers.h"
#include "mx/nn/cpu/matmul.h"

namespace mx::nn {
namespace {

using Vec = std::vector<float>;

Vec random_vec(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  Vec v(n);
  for (float& x : v) x = d(rng);
  return v;
}

double dot(const Vec& y, const Vec& r) {
  double s = 0.0;
  for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * double(r[i]);
  return s;
}

// Compares `analytic` with central differences of loss() in every element of *x.
void check(Vec* x, const Vec& analytic, const std::function<double()>& loss, const char* what,
           double h = 1e-3, double atol = 5e-3, double rtol = 1e-2) {
  ASSERT_EQ(x->size(), analytic.size());
  for (size_t i = 0; i < x->size(); ++i) {
    const float saved = (*x)[i];
    (*x)[i] = saved + float(h);
    const double plus = loss();
    (*x)[i] = saved - float(h);
    const double minus = loss();
    (*x)[i] = saved;
    const double numeric = (plus - minus) / (2.0 * h);
    ASSERT_NEAR(analytic[i], numeric, atol + rtol * std::fabs(numeric)) << what << " [" << i << "]";
  }
}

TEST(NnLayers, EmbeddingGradients) {
  const int64_t n = 6, t = 3, c = 4, v = 5;
  const std::vector<uint32_t> tokens = {1, 4, 1, 0, 2, 4};
  Vec wte = random_vec(v * c, 1), wpe = random_vec(t * c, 2), r = random_vec(n * c, 3);
  Vec out(n * c), dwte(v * c, 0.0f), dwpe(t * c, 0.0f);
  cpu::embedding_backward(dwte.data(), dwpe.data(), r.data(), tokens.data(), n, t, c);
  auto loss = [&] {
    cpu::embedding_forward(out.data(), tokens.data(), wte.data(), wpe.data(), n, t, c);
    return dot(out, r);
  };
  check(&wte, dwte, loss, "wte");
  check(&wpe, dwpe, loss, "wpe");
}

TEST(NnLayers, LayerNormGradients) {
  const int64_t n = 7, c = 24;
  Vec x = random_vec(n * c, 4, 2.0f), w = random_vec(c, 5), b = random_vec(c, 6);
  Vec r = random_vec(n * c, 7), out(n * c), mean(n), rstd(n);
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), n, c,
                         false, 0);
  Vec dx(n * c, 0.0f), dw(c, 0.0f), db(c, 0.0f);
  cpu::layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(),
                          mean.data(), rstd.data(), n, c, 0);
  auto loss = [&] {
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), n, c,
                           false, 0);
    return dot(out, r);
  };
  check(&x, dx, loss, "x");
  check(&w, dw, loss, "w");
  check(&b, db, loss, "b");
}

TEST(NnLayers, RmsNormGradients) {
  const int64_t n = 7, c = 24;
  Vec x = random_vec(n * c, 8, 2.0f), w = random_vec(c, 9), r = random_vec(n * c, 10);
  Vec out(n * c), rstd(n), dx(n * c, 0.0f), dw(c, 0.0f);
  cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, c, false, 0);
  cpu::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, c, 0);
  auto loss = [&] {
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, c, false, 0);
    return dot(out, r);
  };
  check(&x, dx, loss, "x");
  check(&w, dw, loss, "w");
}

TEST(NnLayers, ElementwiseGradients) {
  const int64_t n = 200;
  Vec x = random_vec(n, 11, 2.0f), u = random_vec(n, 12, 2.0f), r = random_vec(n, 13);
  Vec out(n), dx(n, 0.0f), du(n, 0.0f);
  cpu::gelu_backward(dx.data(), x.data(), r.data(), n, 0);
  auto gelu = [&] {
    cpu::gelu_forward(out.data(), x.data(), n, false, 0);
    return dot(out, r);
  };
  check(&x, dx, gelu, "gelu");
  std::fill(dx.begin(), dx.end(), 0.0f);
  cpu::swiglu_backward(dx.data(), du.data(), r.data(), x.data(), u.data(), n, 0);
  auto swiglu = [&] {
    cpu::swiglu_forward(out.data(), x.data(), u.data(), n, false, 0);
    return dot(out, r);
  };
  check(&x, dx, swiglu, "swiglu gate");
  check(&u, du, swiglu, "swiglu up");
  std::fill(dx.begin(), dx.end(), 0.0f);
  std::fill(du.begin(), du.end(), 0.0f);
  cpu::residual_backward(dx.data(), du.data(), r.data(), n, 0);
  auto residual = [&] {
    cpu::residual_forward(out.data(), x.data(), u.data(), n, false, 0);
    return dot(out, r);
  };
  check(&x, dx, residual, "residual a");
  check(&u, du, residual, "residual b");
}

TEST(NnLayers, RopeGradientsAndConvention) {
  const int64_t n = 6, t = 3, heads = 2, hs = 8;
  Vec x = random_vec(n * heads * hs, 14), r = random_vec(n * heads * hs, 15), y;
  Vec dx = r;
  cpu::rope_backward(dx.data(), n, t, heads, hs, 0);
  auto loss = [&] {
    y = x;
    cpu::rope_forward(y.data(), n, t, heads, hs, 0, false, 0);
    return dot(y, r);
  };
  check(&x, dx, loss, "rope");
  // Position 1 (row 1), head 0, pair i = 1: angle 1 * 10000^(-2/8).
  loss();
  const double angle = std::pow(10000.0, -2.0 / 8.0);
  const float* in = x.data() + 1 * heads * hs + 2;
  const float* got = y.data() + 1 * heads * hs + 2;
  EXPECT_NEAR(got[0], in[0] * std::cos(angle) - in[1] * std::sin(angle), 1e-6);
  EXPECT_NEAR(got[1], in[0] * std::sin(angle) + in[1] * std::cos(angle), 1e-6);
  // Position 0 is not rotated.
  for (int64_t i = 0; i < heads * hs; ++i) EXPECT_EQ(y[i], x[i]);
}

struct AttentionCase {
  cpu::AttentionShape s{2, 5, 4, 2, 4};
  Vec q, k, v, r, out, att;
  cpu::AttentionScratch scratch;
  AttentionCase() {
    q = random_vec(s.b * s.t * s.nh * s.hs, 16);
    k = random_vec(s.b * s.t * s.nkv * s.hs, 17);
    v = random_vec(s.b * s.t * s.nkv * s.hs, 18);
    r = random_vec(s.b * s.t * s.nh * s.hs, 19);
    out.resize(r.size());
    att.resize(s.b * s.nh * s.t * s.t);
  }
  double loss(const Recipe& recipe, int threads) {
    EXPECT_EQ(cpu::attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), s,
                                     recipe, 7, threads, scratch),
              "");
    return dot(out, r);
  }
};

TEST(NnLayers, AttentionGradientsWithGroupedQueryHeads) {
  AttentionCase c;
  const Recipe fp32;
  c.loss(fp32, 0);
  Vec dq(c.q.size(), 0.0f), dk(c.k.size(), 0.0f), dv(c.v.size(), 0.0f);
  ASSERT_EQ(
      cpu::attention_backward(dq.data(), dk.data(), dv.data(), c.r.data(), c.q.data(), c.k.data(),
                              c.v.data(), c.att.data(), c.s, fp32, 7, 0, c.scratch),
      "");
  auto loss = [&] { return c.loss(fp32, 0); };
  check(&c.q, dq, loss, "q");
  check(&c.k, dk, loss, "k");
  check(&c.v, dv, loss, "v");
  // Causality: the output at position 0 depends only on v at position 0.
  c.loss(fp32, 0);
  for (int64_t h = 0; h < c.s.nh; ++h) EXPECT_EQ(c.att[h * 25 + 1], 0.0f);
}

// The forward pass against attention written out in double: causal softmax(q k^T / sqrt(hs))
// v, query head h reading kv head h / (nh / nkv). Float32 sums of <= 5 terms of O(1) values
// err by ~1e-6; a wrong mask or head mapping errs by O(0.1).
TEST(NnLayers, AttentionMatchesADoubleReference) {
  AttentionCase c;
  c.loss(Recipe{}, 0);
  const auto& s = c.s;
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.nh; ++h) {
      const int64_t kvh = h / (s.nh / s.nkv);
      for (int64_t i = 0; i < s.t; ++i) {
        const float* qi = c.q.data() + ((b * s.t + i) * s.nh + h) * s.hs;
        std::vector<double> w(i + 1);
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j <= i; ++j) {
          const float* kj = c.k.data() + ((b * s.t + j) * s.nkv + kvh) * s.hs;
          double d = 0.0;
          for (int64_t e = 0; e < s.hs; ++e) d += double(qi[e]) * kj[e];
          w[j] = d / std::sqrt(double(s.hs));
          mx = std::max(mx, w[j]);
        }
        for (double& x : w) sum += (x = std::exp(x - mx));
        for (int64_t e = 0; e < s.hs; ++e) {
          double o = 0.0;
          for (int64_t j = 0; j <= i; ++j) {
            o += w[j] / sum * c.v[((b * s.t + j) * s.nkv + kvh) * s.hs + e];
          }
          EXPECT_NEAR(c.out[((b * s.t + i) * s.nh + h) * s.hs + e], o, 1e-5);
        }
      }
    }
  }
}

TEST(NnLayers, AttentionIsThreadCountIndependentAndMxChangesItSlightly) {
  AttentionCase c;
  Recipe mx = *recipe_preset("mxfp6");
  std::vector<Vec> outs;
  for (int threads : {1, 2, 3}) {
    c.loss(mx, threads);
    outs.push_back(c.out);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  c.loss(Recipe{}, 1);
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < c.out.size(); ++i) {
    diff += std::pow(double(c.out[i]) - outs[0][i], 2);
    norm += std::pow(double(c.out[i]), 2);
  }
  // FP6 E3M2 keeps 2 mantissa bits: relative errors of a few percent, but not zero.
  EXPECT_GT(diff, 0.0);
  EXPECT_LT(std::sqrt(diff / norm), 0.2);
}

// An asymmetric cast gives a block's zeros its offset, so the causal mask applies again after
// the cast of P: O = cast(P) cast(V) and dV = cast(P)^T dO with cast(P)'s masked entries zero,
// else query i would read later keys' values. The test first checks that the cast does move
// some masked zeros (so that the re-applied mask is what it tests).
TEST(NnLayers, AttentionUnderAsymmetricCastsStaysCausal) {
  Recipe asym;
  ASSERT_EQ(parse_recipe_json(R"({"name": "int4-asym",
      "act_fwd": {"format": "mxint4", "asym": true}, "act_dw": {"format": "mxint4", "asym": true}})",
                              &asym),
            "");
  AttentionCase c;
  const auto& s = c.s;
  c.loss(asym, 1);
  const OperandCast& p_cast = asym.act_fwd;
  std::vector<float> p_scratch, v_scratch;
  std::string error;
  const int64_t p_shape[] = {s.b * s.nh * s.t, s.t}, v_shape[] = {s.b, s.t, s.nkv * s.hs};
  const float* pc =
      cpu::cast_tensor(c.att.data(), p_shape, 1, p_cast, "P", 0, p_scratch, &error, 0);
  const float* vc = cpu::cast_tensor(c.v.data(), v_shape, 1, p_cast, "V", 0, v_scratch, &error, 0);
  // dV's product casts P along the queries.
  std::vector<float> pdw_scratch;
  const int64_t pdw_shape[] = {s.b * s.nh, s.t, s.t};
  const float* pdw =
      cpu::cast_tensor(c.att.data(), pdw_shape, 1, asym.act_dw, "P", 0, pdw_scratch, &error, 0);
  ASSERT_EQ(error, "");
  int64_t moved_zeros = 0;
  for (int64_t r = 0; r < s.b * s.nh * s.t; ++r) {
    for (int64_t j = r % s.t + 1; j < s.t; ++j) {
      moved_zeros += (pc[r * s.t + j] != 0.0f) + (pdw[r * s.t + j] != 0.0f);
    }
  }
  ASSERT_GT(moved_zeros, 0);
  Vec dq(c.q.size(), 0.0f), dk(c.k.size(), 0.0f), dv(c.v.size(), 0.0f);
  ASSERT_EQ(cpu::attention_backward(dq.data(), dk.data(), dv.data(), c.r.data(), c.q.data(),
                                    c.k.data(), c.v.data(), c.att.data(), s, asym, 7, 1, c.scratch),
            "");
  const int64_t group = s.nh / s.nkv;
  for (int64_t b = 0; b < s.b; ++b) {
    for (int64_t h = 0; h < s.nh; ++h) {
      const float* p = pc + (b * s.nh + h) * s.t * s.t;
      for (int64_t i = 0; i < s.t; ++i) {
        for (int64_t e = 0; e < s.hs; ++e) {
          double o = 0.0;
          for (int64_t j = 0; j <= i; ++j) {
            o += double(p[i * s.t + j]) * vc[(b * s.t + j) * s.nkv * s.hs + h / group * s.hs + e];
          }
          EXPECT_NEAR(c.out[((b * s.t + i) * s.nh + h) * s.hs + e], o, 1e-5);
        }
      }
    }
    for (int64_t kvh = 0; kvh < s.nkv; ++kvh) {
      for (int64_t j = 0; j < s.t; ++j) {
        for (int64_t e = 0; e < s.hs; ++e) {
          double want = 0.0;
          for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            const float* p = pdw + (b * s.nh + h) * s.t * s.t;
            for (int64_t i = j; i < s.t; ++i) {
              want += double(p[i * s.t + j]) * c.r[((b * s.t + i) * s.nh + h) * s.hs + e];
            }
          }
          EXPECT_NEAR(dv[((b * s.t + j) * s.nkv + kvh) * s.hs + e], want, 1e-5);
        }
      }
    }
  }
}

TEST(NnLayers, CrossEntropyGradientsAndLoss) {
  const int64_t n = 4, v = 7;
  Vec logits = random_vec(n * v, 20, 2.0f), probs(n * v), losses(n), dl(n * v, 0.0f);
  const std::vector<uint32_t> targets = {3, 0, 6, 3};
  auto loss = [&] {
    return double(cpu::crossentropy_forward(probs.data(), losses.data(), logits.data(),
                                            targets.data(), n, v, 0));
  };
  // A uniform distribution costs log(v).
  Vec zeros(n * v, 0.0f);
  EXPECT_NEAR(
      cpu::crossentropy_forward(probs.data(), losses.data(), zeros.data(), targets.data(), n, v, 0),
      std::log(7.0), 1e-6);
  loss();
  cpu::crossentropy_backward(dl.data(), probs.data(), targets.data(), n, v, 1.0f / float(n), 0);
  check(&logits, dl, loss, "logits");
}

TEST(NnLayers, DistillationLossIsTheKlDivergenceAndItsGradient) {
  const int64_t n = 4, v = 7;
  Vec logits = random_vec(n * v, 21, 2.0f), teacher = random_vec(n * v, 22, 2.0f);
  Vec losses(n), dl(n * v, 0.0f);
  const float scale = 1.0f / float(n);
  auto loss = [&] {
    cpu::distillation_loss(losses.data(), nullptr, logits.data(), teacher.data(), n, v, scale, 0);
    double total = 0.0;
    for (float x : losses) total += x;
    return total * scale;
  };
  // Against KL(q || p) in double, row by row.
  loss();
  for (int64_t i = 0; i < n; ++i) {
    double s_sum = 0, t_sum = 0;
    for (int64_t j = 0; j < v; ++j) {
      s_sum += std::exp(double(logits[i * v + j]));
      t_sum += std::exp(double(teacher[i * v + j]));
    }
    double kl = 0;
    for (int64_t j = 0; j < v; ++j) {
      const double q = std::exp(double(teacher[i * v + j])) / t_sum;
      kl += q * std::log(q / (std::exp(double(logits[i * v + j])) / s_sum));
    }
    EXPECT_NEAR(losses[i], kl, 1e-6) << "row " << i;
  }
  cpu::distillation_loss(losses.data(), dl.data(), logits.data(), teacher.data(), n, v, scale, 0);
  check(&logits, dl, loss, "logits");
  // In place, as the model calls it: the same gradient.
  Vec in_place = logits;
  cpu::distillation_loss(losses.data(), in_place.data(), in_place.data(), teacher.data(), n, v,
                         scale, 0);
  EXPECT_EQ(in_place, dl);
  // A model that matches its teacher has nothing to learn.
  cpu::distillation_loss(losses.data(), dl.data(), teacher.data(), teacher.data(), n, v, scale, 0);
  EXPECT_EQ(losses, Vec(n, 0.0f));
  EXPECT_EQ(dl, Vec(n * v, 0.0f));
}

}  // namespace
}  // namespace mx::nn
