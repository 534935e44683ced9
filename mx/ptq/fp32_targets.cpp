#include "mx/ptq/fp32_targets.h"

#include <algorithm>
#include <numeric>

#include "mx/kernels/cpu/dgemm.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/sgemm.h"
#include "mx/ptq/cholesky.h"
#include "mx/ptq/hessian.h"

namespace mx::ptq {
namespace {

constexpr int64_t kTrianglePanel = 64;  // columns per panel of the triangular products

}  // namespace

CrossSum cross_sum(int64_t k) {
  CrossSum s;
  s.k = k;
  s.total.assign(size_t(k * k), 0.0);
  return s;
}

void input_difference(const float* fp_inputs, const float* inputs, int64_t rows, int64_t k,
                      std::vector<float>* delta) {
  delta->resize(size_t(rows * k));
  for (int64_t i = 0; i < rows * k; ++i) (*delta)[size_t(i)] = fp_inputs[i] - inputs[i];
}

void add_cross_product(CrossSum* sum, const float* batch) {
  for (size_t i = 0; i < sum->total.size(); ++i) sum->total[i] += double(batch[i]);
}

void add_cross_batch(CrossSum* sum, const float* fp_inputs, const float* inputs, int64_t rows,
                     int threads) {
  const int64_t k = sum->k;
  input_difference(fp_inputs, inputs, rows, k, &sum->delta);
  sum->batch.resize(size_t(k * k));
  cpu::SgemmOptions options;
  options.threads = threads;
  // batch[i][j] = sum over rows t of delta[t][i] inputs[t][j]: A = deltaᵀ, B = inputs.
  cpu::sgemm(sum->batch.data(), k, cpu::StridedMatrix{sum->delta.data(), 1, k},
             cpu::StridedMatrix{inputs, k, 1}, k, rows, k, options);
  add_cross_product(sum, sum->batch.data());
}

std::string prepare_fp32_correction(std::span<const float> h, CrossSum&& cross, double damp,
                                    int threads, Fp32Correction* out) {
  const int64_t k = cross.k;
  std::vector<int64_t> natural(static_cast<size_t>(k));
  std::iota(natural.begin(), natural.end(), int64_t{0});
  std::vector<double> u = damped_hessian(h, k, natural, damp);
  if (std::string e = inverse_hessian_factor(&u, k, threads); !e.empty()) return e;
  std::vector<double> ut(static_cast<size_t>(k * k));
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) ut[size_t(j * k + i)] = u[size_t(i * k + j)];
  }
  *out = {k, std::move(cross.total), std::move(u), std::move(ut)};
  return "";
}

void correct_toward_fp32_outputs(std::span<float> w, int64_t n, const Fp32Correction& c,
                                 double weight, int threads) {
  if (weight == 0.0) return;
  const int64_t k = c.k;
  cpu::parallel_for(n, 1, threads, [&](int64_t begin, int64_t end) {
    const int64_t rows = end - begin;
    std::vector<double> x(size_t(rows * k)), m(size_t(rows * k), 0.0), y(size_t(rows * k), 0.0),
        z(size_t(rows * k), 0.0);
    for (int64_t i = 0; i < rows * k; ++i) x[size_t(i)] = w[size_t(begin * k + i)];
    cpu::dgemm_accumulate(m.data(), k, x.data(), k, c.cross.data(), k, rows, k, k);
    // U is upper triangular: column panel [j0, j1) of M Uᵀ reads only M's columns from j0 on,
    // and of Y U only Y's columns before j1. The terms left out are products with U's zeros.
    for (int64_t j0 = 0; j0 < k; j0 += kTrianglePanel) {
      const int64_t j1 = std::min(k, j0 + kTrianglePanel);
      cpu::dgemm_accumulate(y.data() + j0, k, m.data() + j0, k, c.ut.data() + j0 * k + j0, k, rows,
                            k - j0, j1 - j0);
    }
    for (int64_t j0 = 0; j0 < k; j0 += kTrianglePanel) {
      const int64_t j1 = std::min(k, j0 + kTrianglePanel);
      cpu::dgemm_accumulate(z.data() + j0, k, y.data(), k, c.u.data() + j0, k, rows, j1, j1 - j0);
    }
    for (int64_t i = 0; i < rows * k; ++i) {
      w[size_t(begin * k + i)] = float(x[size_t(i)] + weight * z[size_t(i)]);
    }
  });
}

}  // namespace mx::ptq
