#include "mx/ptq/cholesky.h"

#include <algorithm>
#include <cmath>

#include "mx/io/cat.h"
#include "mx/kernels/cpu/parallel.h"

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

std::string inverse_hessian_factor(std::vector<double>* h, int64_t k, int threads) {
  double* a = h->data();
  // Loops whose work is below this many multiply-adds stay on the calling thread.
  const auto share = [&](int64_t work) { return work < (int64_t(1) << 15) ? 1 : threads; };
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
    cpu::parallel_for(j, 8, share(j * tail), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        a[i * k + j] = (a[i * k + j] - dot(a + i * k + j + 1, vj, tail)) / d;
      }
    });
  }
  // U = V^-1, row by row from the bottom: V U = I gives
  // U[i][i] = 1 / V[i][i] and U[i][j] = -(sum_{i<m<=j} V[i][m] U[m][j]) / V[i][i] for j > i.
  // Each U[i][j] sums over m in increasing order, whichever thread holds column j.
  std::vector<double> u(size_t(k * k), 0.0);
  for (int64_t i = k - 1; i >= 0; --i) {
    const double* vi = a + i * k;
    double* ui = u.data() + i * k;
    ui[i] = 1.0 / vi[i];
    const int64_t rest = k - 1 - i;
    cpu::parallel_for(rest, 64, share(rest * rest / 2), [&](int64_t begin, int64_t end) {
      double* acc = ui + i + 1;  // row i of U past the diagonal, as the sums' home
      for (int64_t j = begin; j < end; ++j) acc[j] = 0.0;
      for (int64_t m = i + 1; m < k; ++m) {
        const double s = vi[m];
        const double* um = u.data() + m * k + i + 1;
        // U[m][j] is zero for j < m: start the columns at m.
        for (int64_t j = std::max(begin, m - i - 1); j < end; ++j) acc[j] += s * um[j];
      }
      for (int64_t j = begin; j < end; ++j) acc[j] = -acc[j] / vi[i];
    });
  }
  *h = std::move(u);
  return "";
}

}  // namespace mx::ptq
