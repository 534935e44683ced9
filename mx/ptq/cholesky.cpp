#include "mx/ptq/cholesky.h"

#include <cmath>

#include "mx/io/cat.h"

namespace mx::ptq {
namespace {

// sum_m a[m] * b[m] over [0, n), in four interleaved partial sums: a fixed order.
double dot(const double* a, const double* b, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t m = 0;
  for (; m + 4 <= n; m += 4) {
    for (int l = 0; l < 4; ++l) s[l] += a[m + l] * b[m + l];
  }
  for (int l = 0; m + l < n; ++l) s[l] += a[m + l] * b[m + l];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

}  // namespace

std::string inverse_hessian_factor(std::vector<double>* h, int64_t k) {
  double* a = h->data();
  // H = V V^T, V upper, from the last column back: column j of V needs the parts of rows
  // i <= j to the right of j only, which are final by then. V overwrites H's upper triangle.
  for (int64_t j = k - 1; j >= 0; --j) {
    const double* vj = a + j * k + j + 1;
    const int64_t tail = k - 1 - j;
    const double pivot = a[j * k + j] - dot(vj, vj, tail);
    if (!(pivot > 0) || !std::isfinite(pivot)) {
      return io::cat("the Hessian is not positive definite (at input ", j,
                     "): raise the dampening");
    }
    const double d = std::sqrt(pivot);
    a[j * k + j] = d;
    for (int64_t i = 0; i < j; ++i) {
      a[i * k + j] = (a[i * k + j] - dot(a + i * k + j + 1, vj, tail)) / d;
    }
  }
  // U = V^-1, row by row from the bottom: V U = I gives
  // U[i][i] = 1 / V[i][i] and U[i][j] = -(sum_{i<m<=j} V[i][m] U[m][j]) / V[i][i] for j > i.
  std::vector<double> u(size_t(k * k), 0.0);
  std::vector<double> acc(size_t(k), 0.0);
  for (int64_t i = k - 1; i >= 0; --i) {
    const double* vi = a + i * k;
    for (int64_t j = i + 1; j < k; ++j) acc[size_t(j)] = 0.0;
    for (int64_t m = i + 1; m < k; ++m) {
      const double s = vi[m];
      const double* um = u.data() + m * k;
      for (int64_t j = m; j < k; ++j) acc[size_t(j)] += s * um[j];
    }
    double* ui = u.data() + i * k;
    ui[i] = 1.0 / vi[i];
    for (int64_t j = i + 1; j < k; ++j) ui[j] = -acc[size_t(j)] / vi[i];
  }
  *h = std::move(u);
  return "";
}

}  // namespace mx::ptq
