#include "mx/train/evaluate.h"

#include <cmath>
#include <limits>
#include <vector>

#include "mx/data/batch_sampler.h"
#include "mx/kernels/cpu/parallel.h"

namespace mx::train {

int64_t batch_count(data::TokenView tokens, const EvalWindow& w) {
  const int64_t all = data::eval_batch_count(tokens, w.batch, w.seq_len);
  return w.max_batches > 0 ? std::min(all, w.max_batches) : all;
}

std::string reserve_for(nn::Model& model, data::TokenView tokens, const EvalWindow& w) {
  const int64_t rows = std::min(w.batch, data::eval_window_count(tokens, w.seq_len));
  return rows > 0 ? model.reserve(rows, w.seq_len) : "";
}

namespace {

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

// KL(p || q) of one row's softmaxes, and whether their argmaxes agree.
struct RowAgreement {
  double kl = 0;
  bool top1 = false;
};

// With a and b the two rows of logits, p = exp(a - lse_a) and log p - log q = (a - b) -
// (lse_a - lse_b), so KL(p || q) = sum p (a - b) - (lse_a - lse_b): one pass of two
// exponentials per element (sums in double), where log-softmaxes first would take three.
RowAgreement compare_row(const float* a, const float* b, int64_t v) {
  const int64_t top_a = argmax(a, v), top_b = argmax(b, v);
  const double max_a = a[top_a], max_b = b[top_b];
  double sum_a = 0, sum_b = 0, weighted = 0;
  for (int64_t j = 0; j < v; ++j) {
    const double ea = std::exp(double(a[j]) - max_a);
    sum_a += ea;
    sum_b += std::exp(double(b[j]) - max_b);
    weighted += ea * (double(a[j]) - double(b[j]));
  }
  RowAgreement r;
  r.kl = weighted / sum_a - ((max_a + std::log(sum_a)) - (max_b + std::log(sum_b)));
  r.top1 = top_a == top_b;
  return r;
}

}  // namespace

std::string add_loss_sums(nn::Model& model, data::TokenView tokens, const EvalWindow& w,
                          int64_t first, int64_t stride, double sums[2]) {
  const int64_t batches = batch_count(tokens, w);
  if (std::string e = reserve_for(model, tokens, w); !e.empty()) return e;
  data::Batch batch;
  for (int64_t i = first; i < batches; i += stride) {
    if (!data::eval_batch(tokens, w.batch, w.seq_len, i, &batch).empty()) break;
    const int64_t n = batch.rows * batch.seq_len;
    float mean = 0;
    if (std::string e = model.forward(batch.inputs.data(), batch.targets.data(), batch.rows,
                                      batch.seq_len, &mean);
        !e.empty()) {
      return e;
    }
    sums[0] += double(mean) * double(n);
    sums[1] += double(n);
  }
  return "";
}

std::string evaluate_loss(nn::Model& model, data::TokenView tokens, const EvalWindow& w,
                          double* loss) {
  double sums[2] = {0, 0};
  if (std::string e = add_loss_sums(model, tokens, w, 0, 1, sums); !e.empty()) return e;
  *loss = loss_of_sums(sums);
  return "";
}

double loss_of_sums(const double sums[2]) {
  return sums[1] > 0 ? sums[0] / sums[1] : std::numeric_limits<double>::quiet_NaN();
}

std::string direct_cast_eval(nn::Model& model, const nn::Recipe& recipe, data::TokenView tokens,
                             const EvalWindow& w, DirectCastResult* result, nn::Model* reference) {
  const nn::Recipe fp32 = *nn::recipe_preset("fp32");
  const nn::Recipe cast = nn::forward_only(recipe);
  const int64_t v = model.config().vocab;
  nn::Model& ref_model = reference != nullptr ? *reference : model;
  if (ref_model.config().vocab != v) {
    return "the reference model's vocabulary differs from the model's";
  }
  const int64_t batches = batch_count(tokens, w);
  if (std::string e = reserve_for(model, tokens, w); !e.empty()) return e;
  if (std::string e = reserve_for(ref_model, tokens, w); !e.empty()) return e;
  DirectCastResult r;
  double loss_sum = 0, ref_sum = 0, kl_sum = 0;
  int64_t agree = 0;
  std::vector<float> ref_logits;
  std::vector<RowAgreement> rows;
  data::Batch batch;
  // One pass of `m` under `r`; its own recipe comes back whatever happens.
  auto pass = [&](nn::Model& m, const nn::Recipe& r, float* mean) {
    const nn::Recipe saved = m.recipe();
    m.set_recipe(r);
    std::string e =
        m.forward(batch.inputs.data(), batch.targets.data(), batch.rows, batch.seq_len, mean);
    m.set_recipe(saved);
    return e;
  };
  for (int64_t i = 0; i < batches; ++i) {
    if (!data::eval_batch(tokens, w.batch, w.seq_len, i, &batch).empty()) break;
    const int64_t n = batch.rows * batch.seq_len;
    float ref_mean = 0, cast_mean = 0;
    if (std::string e = pass(ref_model, fp32, &ref_mean); !e.empty()) return e;
    ref_sum += double(ref_mean) * double(n);
    // logits() downloads all of them from a GPU at each call: once per pass, not per row.
    const float* ref_host = ref_model.logits();
    if (ref_host == nullptr) return "the reference pass left no logits";
    ref_logits.assign(ref_host, ref_host + n * v);
    if (std::string e = pass(model, cast, &cast_mean); !e.empty()) return e;
    loss_sum += double(cast_mean) * double(n);
    const float* cast_logits = model.logits();
    if (cast_logits == nullptr) return "the cast pass left no logits";
    // Rows on threads, summed in row order afterwards: the same figures for any thread count.
    rows.assign(size_t(n), {});
    cpu::parallel_for(n, 1, w.threads, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        rows[size_t(row)] = compare_row(ref_logits.data() + row * v, cast_logits + row * v, v);
      }
    });
    for (const RowAgreement& a : rows) {
      kl_sum += a.kl;
      agree += a.top1 ? 1 : 0;
    }
    r.tokens += n;
  }
  if (r.tokens == 0) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    r.loss = r.ppl = r.kl = r.top1 = r.reference_loss = nan;
    *result = r;
    return "";
  }
  const double n = double(r.tokens);
  r.loss = loss_sum / n;
  r.ppl = std::exp(r.loss);
  r.kl = kl_sum / n;
  r.top1 = double(agree) / n;
  r.reference_loss = ref_sum / n;
  *result = r;
  return "";
}

}  // namespace mx::train
