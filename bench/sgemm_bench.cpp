// Throughput of the cache-blocked FP32 product (mx/kernels/cpu/sgemm.h) on the shapes of GPT-2
// 124M's linear layers over a batch of 8 x 1024 tokens, and of the Hessian X^T X of their inputs
// (symmetric mode), and of one decoding step's product. GFLOPS counts 2 M N K (M N K for the
// symmetric half) per second.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "mx/kernels/cpu/sgemm.h"

namespace {

std::vector<float> normal_matrix(int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float& x : v) x = normal(rng);
  return v;
}

mx::cpu::SgemmOptions threads(int count, bool symmetric) {
  mx::cpu::SgemmOptions o;
  o.threads = count;
  o.symmetric = symmetric;
  return o;
}

// y[M, N] = x[M, K] W[N, K]^T, the layout of a linear layer's forward pass.
void BM_SgemmLinear(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const auto x = normal_matrix(m * k), w = normal_matrix(n * k);
  std::vector<float> y(size_t(m * n));
  for (auto _ : state) {
    mx::cpu::sgemm(y.data(), n, {x.data(), k, 1}, {w.data(), 1, k}, m, k, n,
                   threads(int(state.range(3)), false));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * double(m * n * k), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_SgemmLinear)
    ->ArgNames({"M", "K", "N", "threads"})
    ->Args({8192, 768, 2304, 1})
    ->Args({8192, 768, 2304, 2})
    ->Args({8192, 3072, 768, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One decoding step's product, y[1, N] = x[1, K] W[N, K]^T: bound by reading W, so the figure
// is W's bytes per second (the FP32 row beside BM_MatmulDecodeLayers' packed MX ones).
void BM_SgemmDecode(benchmark::State& state) {
  const int64_t k = state.range(0), n = state.range(1);
  const auto x = normal_matrix(k), w = normal_matrix(n * k);
  std::vector<float> y(static_cast<size_t>(n));
  for (auto _ : state) {
    mx::cpu::sgemm(y.data(), n, {x.data(), k, 1}, {w.data(), 1, k}, 1, k, n,
                   threads(int(state.range(2)), false));
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * n * k * int64_t(sizeof(float)));
}
BENCHMARK(BM_SgemmDecode)
    ->ArgNames({"K", "N", "threads"})
    ->Args({4096, 11008, 1})
    ->Args({4096, 11008, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// H[K, K] = X^T X over X [M, K], upper half computed.
void BM_SgemmHessian(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1);
  const auto x = normal_matrix(m * k);
  std::vector<float> h(size_t(k * k));
  for (auto _ : state) {
    mx::cpu::sgemm(h.data(), k, {x.data(), 1, k}, {x.data(), k, 1}, k, m, k,
                   threads(int(state.range(2)), true));
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["GFLOPS"] =
      benchmark::Counter(double(m * k * k), benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}
BENCHMARK(BM_SgemmHessian)
    ->ArgNames({"M", "K", "threads"})
    ->Args({8192, 768, 2})
    ->Args({8192, 3072, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
