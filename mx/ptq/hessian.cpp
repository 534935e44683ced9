#include "mx/ptq/hessian.h"

#include <algorithm>

#include "mx/kernels/cpu/sgemm.h"

namespace mx::ptq {

void accumulate_hessian(float* h, const float* x, int64_t rows, int64_t k, int threads) {
  cpu::SgemmOptions options;
  options.accumulate = true;
  options.symmetric = true;
  options.threads = threads;
  cpu::sgemm(h, k, cpu::StridedMatrix{x, 1, k}, cpu::StridedMatrix{x, k, 1}, k, rows, k, options);
}

HessianSum hessian_sum(int64_t k) {
  return HessianSum{k, std::vector<double>(size_t(k * k), 0.0), std::vector<float>(size_t(k * k))};
}

void add_batch(HessianSum* h, const float* batch) {
  for (size_t i = 0; i < h->total.size(); ++i) h->total[i] += double(batch[i]);
}

std::vector<float> hessian_value(const HessianSum& h) {
  return std::vector<float>(h.total.begin(), h.total.end());
}

std::vector<double> damped_hessian(std::span<const float> h, int64_t k,
                                   std::span<const int64_t> order, double damp) {
  double mean = 0;
  for (int64_t i = 0; i < k; ++i) mean += double(h[size_t(i * k + i)]);
  mean /= double(k);
  const double lambda = damp * mean;
  std::vector<bool> dead(static_cast<size_t>(k));
  for (int64_t p = 0; p < k; ++p) {
    const int64_t i = order[size_t(p)];
    dead[size_t(p)] = h[size_t(i * k + i)] == 0.0f;
  }
  std::vector<double> out(static_cast<size_t>(k * k));
  for (int64_t p = 0; p < k; ++p) {
    const int64_t i = order[size_t(p)];
    for (int64_t q = 0; q < k; ++q) {
      const int64_t j = order[size_t(q)];
      out[size_t(p * k + q)] =
          dead[size_t(p)] || dead[size_t(q)] ? 0.0 : double(h[size_t(i * k + j)]);
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    double& d = out[size_t(p * k + p)];
    d = d == 0.0 ? 1.0 : d + lambda;
  }
  return out;
}

}  // namespace mx::ptq
