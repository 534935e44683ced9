#include "mx/ptq/cholesky.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "mx/io/cat.h"
#include "mx/kernels/cpu/dgemm.h"
#include "mx/kernels/cpu/parallel.h"

namespace mx::ptq {
namespace {

// The work runs on R, H with its order reversed (R[i][j] = H[k-1-i][k-1-j]): V = P L P, where
// R = L L^T is R's lower Cholesky factor and P the reversal, and U = V^-1 = P L^-1 P. Both
// factorizations are blocked into panels of this many columns (rows), whose products go through
// dgemm_accumulate.
constexpr int64_t kPanel = 64;
// Rows of L per task of the trailing update, and columns of L^-1 per task of the inverse.
constexpr int64_t kRowTile = 8;
constexpr int64_t kColumnChunk = 64;

// Task t of `count`, visited from both ends in turn, so that consecutive tasks, which one thread
// takes together, pair a long task with a short one.
int64_t from_both_ends(int64_t t, int64_t count) {
  return t % 2 == 0 ? t / 2 : count - 1 - t / 2;
}

void for_tasks(int64_t count, int threads, const std::function<void(int64_t)>& task) {
  cpu::parallel_for(count, 1, threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) task(from_both_ends(t, count));
  });
}

// L[i][j] = (R[i][j] - sum_{m<j} L[i][m] L[j][m]) / L[j][j], the sum one chain of fused
// multiply-adds in increasing m: the panels before j0 have already continued it in r[i][j].
// (Compiled twice, so that CPUs with FMA run std::fma as one instruction: same bits.)
__attribute__((target_clones("fma", "default"))) void solve_entry(double* r, int64_t k, int64_t i,
                                                                  int64_t j, int64_t j0) {
  double* ri = r + i * k;
  const double* rj = r + j * k;
  double t = ri[j];
  for (int64_t m = j0; m < j; ++m) t = std::fma(-ri[m], rj[m], t);
  ri[j] = t / rj[j];
}

// R = L L^T in place (lower triangle), right-looking by panels. Every L[i][j] is the unblocked
// algorithm's chain, whatever the panel width or the thread count.
std::string cholesky_lower(double* r, int64_t k, int threads) {
  std::vector<double> negated_panel;  // [m - j0][c - j1] = -L[c][m]
  for (int64_t j0 = 0; j0 < k; j0 += kPanel) {
    const int64_t j1 = std::min(j0 + kPanel, k), rest = k - j1;
    for (int64_t j = j0; j < j1; ++j) {
      double* rj = r + j * k;
      double pivot = rj[j];
      for (int64_t m = j0; m < j; ++m) pivot = std::fma(-rj[m], rj[m], pivot);
      if (!(pivot > 0) || !std::isfinite(pivot)) {
        return io::cat("the Hessian is not positive definite (at input ", k - 1 - j,
                       "): raise the dampening");
      }
      rj[j] = std::sqrt(pivot);
      for (int64_t i = j + 1; i < j1; ++i) solve_entry(r, k, i, j, j0);
    }
    if (rest == 0) break;
    cpu::parallel_for(rest, 1, threads, [&](int64_t begin, int64_t end) {
      for (int64_t i = j1 + begin; i < j1 + end; ++i) {
        for (int64_t j = j0; j < j1; ++j) solve_entry(r, k, i, j, j0);
      }
    });
    negated_panel.resize(size_t((j1 - j0) * rest));
    for (int64_t c = j1; c < k; ++c) {
      for (int64_t m = j0; m < j1; ++m)
        negated_panel[size_t((m - j0) * rest + c - j1)] = -r[c * k + m];
    }
    // R[i][c] for j1 <= c <= i: its chain continues over the panel's columns. A row tile also
    // updates a few entries above the diagonal, which nothing reads.
    const int64_t tiles = (rest + kRowTile - 1) / kRowTile;
    for_tasks(tiles, threads, [&](int64_t t) {
      const int64_t i = j1 + t * kRowTile, rows = std::min(kRowTile, k - i);
      cpu::dgemm_accumulate(r + i * k + j1, k, r + i * k + j0, k, negated_panel.data(), rest, rows,
                            j1 - j0, i + rows - j1);
    });
  }
  return "";
}

// X = L^-1 (lower) into x (zero on entry): X[i][c] = (delta_ic - sum_{m<i} L[i][m] X[m][c]) /
// L[i][i], the sum one chain in increasing m. Columns are independent, so each task solves a
// chunk of them, a panel of rows at a time.
void invert_lower(const double* l, double* x, int64_t k, int threads) {
  const int64_t chunks = (k + kColumnChunk - 1) / kColumnChunk;
  for_tasks(chunks, threads, [&](int64_t t) {
    const int64_t c0 = t * kColumnChunk, c1 = std::min(c0 + kColumnChunk, k), width = c1 - c0;
    for (int64_t r0 = c0; r0 < k; r0 += kPanel) {
      const int64_t r1 = std::min(r0 + kPanel, k);
      // Rows before the panel: X[m][c] is zero for m < c, so the chains start at m = c0.
      cpu::dgemm_accumulate(x + r0 * k + c0, k, l + r0 * k + c0, k, x + c0 * k + c0, k, r1 - r0,
                            r0 - c0, width);
      for (int64_t i = r0; i < r1; ++i) {
        double* xi = x + i * k;
        cpu::dgemm_accumulate(xi + c0, k, l + i * k + r0, k, x + r0 * k + c0, k, 1, i - r0, width);
        const double d = l[i * k + i];
        for (int64_t c = c0; c < c1; ++c) xi[c] = ((c == i ? 1.0 : 0.0) - xi[c]) / d;
      }
    }
  });
}

}  // namespace

std::string inverse_hessian_factor(std::vector<double>* h, int64_t k, int threads) {
  // Small factorizations stay on the calling thread.
  threads = k < 256 ? 1 : cpu::resolve_thread_count(threads);
  std::vector<double> r(size_t(k * k), 0.0);
  const double* hd = h->data();
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j <= i; ++j) r[size_t(i * k + j)] = hd[(k - 1 - i) * k + (k - 1 - j)];
  }
  if (std::string e = cholesky_lower(r.data(), k, threads); !e.empty()) return e;
  std::vector<double> x(size_t(k * k), 0.0);
  invert_lower(r.data(), x.data(), k, threads);
  double* u = h->data();
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) u[i * k + j] = x[size_t((k - 1 - i) * k + (k - 1 - j))];
  }
  return "";
}

}  // namespace mx::ptq
