// Throughput of y = x * W^T from packed MX weights (mx/kernels/cpu/mx_matmul.h) against the
// machine's copy bandwidth measured in the same run. At M = 1 (one token of a language model's
// decoding) the product reads W once, so its speed is W's bytes per second:
//   W_GBps   packed elements + scale bytes of W per second (1 GB = 10^9 bytes);
//   copy     memcpy of as many bytes on as many threads, bytes read + written per second: the
//            BM_Copy benchmarks, and for the ratio the median of 15 copies before each product;
//   of_copy  W_GBps / copy.
// Shapes are Llama-7B's MLP matrices: [11008, 4096] (gate, up) and [4096, 11008] (down).
// BM_MatmulDecode reads one W again and again, which a large last-level cache keeps;
// BM_MatmulDecodeLayers reads distinct copies of W in turn, as decoding reads a model's layers,
// with at least twice the last-level cache between two reads of the same bytes: memory speed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include <unistd.h>

#include "mx/core/half.h"
#include "mx/kernels/cpu/mx_matmul.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/kernels/cpu/sgemm.h"

namespace {

const std::vector<float>& normal_values(int64_t count) {
  static std::map<int64_t, std::vector<float>> cache;
  std::vector<float>& v = cache[count];
  if (v.empty()) {
    v.resize(count);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& x : v) x = normal(rng);
  }
  return v;
}

const mx::MxTensor& weights(mx::ElementFormat format, int64_t n, int64_t k) {
  static std::map<std::tuple<int, int64_t, int64_t>, mx::MxTensor> cache;
  mx::MxTensor& w = cache[{int(format), n, k}];
  if (w.scales.empty()) {
    mx::QuantSpec spec;
    spec.format = format;
    const std::vector<int64_t> shape = {n, k};
    mx::cpu::quantize(normal_values(n * k).data(), mx::DType::kF32, shape, spec, &w);
  }
  return w;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// memcpy of `bytes` split across `threads` like the product's rows; bytes read + written per
// second, the median of `repeats` copies.
double copy_bandwidth(int64_t bytes, int threads, int repeats) {
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 2);
  std::vector<double> rates;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    mx::cpu::parallel_for(bytes, 4096, threads, [&](int64_t begin, int64_t end) {
      std::memcpy(dst.data() + begin, src.data() + begin, size_t(end - begin));
    });
    rates.push_back(2.0 * double(bytes) / seconds_since(t0));
  }
  benchmark::DoNotOptimize(dst.data());
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// Bytes that cycling through keeps out of the last-level cache: twice its size, 1 GiB at least.
int64_t beyond_last_level_cache() {
  const long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return std::max<int64_t>(2 * int64_t(std::max(llc, 0L)), int64_t{1} << 30);
}

// How many copies of a layer of `bytes` to cycle through so that none stays cached.
int64_t layers_past_cache(int64_t bytes) {
  return (beyond_last_level_cache() + bytes - 1) / bytes;
}

// Copies of `bytes` each, taken in turn from buffers of `count` of them, as the layers are.
struct LayeredCopy {
  int64_t bytes, count;
  std::vector<uint8_t> src, dst;
  LayeredCopy(int64_t layer_bytes, int64_t layers)
      : bytes(layer_bytes), count(layers), src(layer_bytes * layers, 1), dst(src.size(), 2) {}
  void run(int64_t layer, int threads) {
    uint8_t* to = dst.data() + (layer % count) * bytes;
    const uint8_t* from = src.data() + (layer % count) * bytes;
    mx::cpu::parallel_for(bytes, 4096, threads, [&](int64_t begin, int64_t end) {
      std::memcpy(to + begin, from + begin, size_t(end - begin));
    });
  }
};

void BM_Copy(benchmark::State& state) {
  const int64_t bytes = state.range(0) << 20;
  const int threads = int(state.range(1));
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 2);
  for (auto _ : state) {
    mx::cpu::parallel_for(bytes, 4096, threads, [&](int64_t begin, int64_t end) {
      std::memcpy(dst.data() + begin, src.data() + begin, size_t(end - begin));
    });
    benchmark::DoNotOptimize(dst.data());
  }
  state.counters["GBps"] = benchmark::Counter(
      2.0 * double(bytes) * double(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_MatmulDecode(benchmark::State& state) {
  const auto format = static_cast<mx::ElementFormat>(state.range(0));
  const auto mode = static_cast<mx::cpu::MatmulMode>(state.range(1));
  const int64_t n = state.range(2), k = state.range(3);
  const int threads = int(state.range(4));
  const int64_t m = 1;
  const mx::MxTensor& w = weights(format, n, k);
  const std::vector<float>& x = normal_values(m * k);
  std::vector<float> y(m * n);
  mx::cpu::MatmulOptions options;
  options.mode = mode;
  options.threads = threads;
  const int64_t w_bytes = int64_t(w.elements.size() + w.scales.size());
  const double copy = copy_bandwidth(w_bytes, threads, 15);
  for (auto _ : state) {
    const std::string error =
        mx::cpu::mx_matmul(w, x.data(), mx::DType::kF32, m, y.data(), options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(y.data());
  }
  const double per_second = double(state.iterations()) / 1e9;
  state.counters["W_GBps"] =
      benchmark::Counter(double(w_bytes) * per_second, benchmark::Counter::kIsRate);
  state.counters["copy"] = copy / 1e9;
  state.counters["of_copy"] = benchmark::Counter(
      double(w_bytes) * double(state.iterations()) / copy, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(mx::traits(format).mx_name) +
                 (mode == mx::cpu::MatmulMode::kExact ? " exact " : " fast ") +
                 std::string(mx::cpu::target_name(mx::cpu::best_target())));
}

// The same products over distinct copies of W, one after another (see the file comment).
void BM_MatmulDecodeLayers(benchmark::State& state) {
  const auto format = static_cast<mx::ElementFormat>(state.range(0));
  const auto mode = static_cast<mx::cpu::MatmulMode>(state.range(1));
  const int64_t n = state.range(2), k = state.range(3);
  const int threads = int(state.range(4));
  const mx::MxTensor& first = weights(format, n, k);
  const int64_t w_bytes = int64_t(first.elements.size() + first.scales.size());
  const int64_t layers = layers_past_cache(w_bytes);
  std::vector<mx::MxTensor> w(layers, first);
  LayeredCopy copy(w_bytes, layers);
  std::vector<double> copy_rates;
  for (int64_t i = 0; i < 15 + layers; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    copy.run(i, threads);
    if (i >= layers) copy_rates.push_back(2.0 * double(w_bytes) / seconds_since(t0));
  }
  std::sort(copy_rates.begin(), copy_rates.end());
  const double copy_rate = copy_rates[copy_rates.size() / 2];
  const std::vector<float>& x = normal_values(k);
  std::vector<float> y(n);
  mx::cpu::MatmulOptions options;
  options.mode = mode;
  options.threads = threads;
  int64_t layer = 0;
  for (auto _ : state) {
    const std::string error =
        mx::cpu::mx_matmul(w[layer++ % layers], x.data(), mx::DType::kF32, 1, y.data(), options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["W_GBps"] =
      benchmark::Counter(double(w_bytes) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["copy"] = copy_rate / 1e9;
  state.counters["of_copy"] = benchmark::Counter(double(w_bytes) * state.iterations() / copy_rate,
                                                 benchmark::Counter::kIsRate);
  state.counters["layers"] = double(layers);
  state.SetLabel(std::string(mx::traits(format).mx_name) +
                 (mode == mx::cpu::MatmulMode::kExact ? " exact " : " fast ") +
                 std::string(mx::cpu::target_name(mx::cpu::best_target())));
}

// The FP32 product over distinct copies of W in turn (mx::cpu::sgemm's few-row path), at GPT-2
// 124M's shapes, whose 768 x 768 matrices are small enough that sharing them between threads
// must be decided by the bytes they read rather than by their multiply-adds.
void BM_SgemmDecodeLayers(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  const int threads = int(state.range(2));
  const int64_t w_bytes = n * k * int64_t(sizeof(float));
  const int64_t layers = layers_past_cache(w_bytes);
  const std::vector<float>& first = normal_values(n * k);
  std::vector<float> w(size_t(n * k * layers));
  for (int64_t l = 0; l < layers; ++l) std::copy(first.begin(), first.end(), w.begin() + l * n * k);
  const std::vector<float>& x = normal_values(k);
  std::vector<float> y(n);
  mx::cpu::SgemmOptions options;
  options.threads = threads;
  int64_t layer = 0;
  for (auto _ : state) {
    const float* wl = w.data() + (layer++ % layers) * n * k;
    mx::cpu::sgemm(y.data(), n, {x.data(), k, 1}, {wl, 1, k}, 1, k, n, options);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["W_GBps"] =
      benchmark::Counter(double(w_bytes) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["layers"] = double(layers);
}

// memcpy of one layer's bytes (MXFP4 [11008, 4096]: 23 MiB) taken in turn from buffers past the
// last-level cache.
void BM_CopyLayers(benchmark::State& state) {
  const int64_t bytes = int64_t(11008) * 4096 / 32 * 17;
  const int threads = int(state.range(0));
  LayeredCopy copy(bytes, layers_past_cache(bytes));
  for (int64_t i = 0; i < copy.count; ++i) copy.run(i, threads);
  int64_t layer = 0;
  for (auto _ : state) copy.run(layer++, threads);
  state.counters["GBps"] = benchmark::Counter(2.0 * double(bytes) * state.iterations() / 1e9,
                                              benchmark::Counter::kIsRate);
}

// Reading (summing) one layer's bytes at a time from buffers past the last-level cache: what
// memory delivers to a read-only loop like the product, beside the copy's reads and writes.
void BM_ReadLayers(benchmark::State& state) {
  const int64_t bytes = int64_t(11008) * 4096 / 32 * 17 / 8 * 8;
  const int threads = int(state.range(0));
  LayeredCopy layers(bytes, layers_past_cache(bytes));
  std::atomic<uint64_t> total{0};
  int64_t layer = 0;
  for (auto _ : state) {
    const uint8_t* base = layers.src.data() + (layer++ % layers.count) * bytes;
    mx::cpu::parallel_for(bytes / 8, 512, threads, [&](int64_t begin, int64_t end) {
      uint64_t sum = 0;
      for (int64_t i = begin; i < end; ++i) {
        uint64_t word;
        std::memcpy(&word, base + 8 * i, 8);
        sum += word;
      }
      total += sum;
    });
    benchmark::DoNotOptimize(total.load());
  }
  state.counters["GBps"] =
      benchmark::Counter(double(bytes) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

void decode_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"format", "fast", "n", "k", "threads"});
  for (int threads : {1, 2}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{11008, 4096}, {4096, 11008}}) {
      for (int format : {4, 0, 3, 5}) {  // MXFP4, MXFP8 E4M3, MXFP6 E2M3, MXINT8
        for (int mode : {0, 1}) b->Args({format, mode, n, k, threads});
      }
    }
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// A W of 256 x 4096 that stays in a core's L2 cache, one thread: the decoding and arithmetic
// alone, without memory's limit.
void BM_MatmulDecodeInCache(benchmark::State& state) {
  const auto format = static_cast<mx::ElementFormat>(state.range(0));
  const auto mode = static_cast<mx::cpu::MatmulMode>(state.range(1));
  const int64_t n = 256, k = 4096;
  const mx::MxTensor& w = weights(format, n, k);
  const std::vector<float>& x = normal_values(k);
  std::vector<float> y(n);
  mx::cpu::MatmulOptions options;
  options.mode = mode;
  options.threads = 1;
  for (auto _ : state) {
    mx::cpu::mx_matmul(w, x.data(), mx::DType::kF32, 1, y.data(), options);
    benchmark::DoNotOptimize(y.data());
  }
  const int64_t w_bytes = int64_t(w.elements.size() + w.scales.size());
  state.counters["W_GBps"] =
      benchmark::Counter(double(w_bytes) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["Gelem_per_s"] =
      benchmark::Counter(double(n * k) * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(mx::traits(format).mx_name) +
                 (mode == mx::cpu::MatmulMode::kExact ? " exact" : " fast"));
}

// Several rows of x (a short prompt), where each decoded block of W serves them all.
void BM_MatmulRows(benchmark::State& state) {
  const auto mode = static_cast<mx::cpu::MatmulMode>(state.range(0));
  const int64_t m = state.range(1), n = 4096, k = 4096;
  const mx::MxTensor& w = weights(mx::ElementFormat::kE2M1, n, k);
  const std::vector<float>& x = normal_values(m * k);
  std::vector<float> y(m * n);
  mx::cpu::MatmulOptions options;
  options.mode = mode;
  options.threads = int(state.range(2));
  for (auto _ : state) {
    mx::cpu::mx_matmul(w, x.data(), mx::DType::kF32, m, y.data(), options);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOPs"] = benchmark::Counter(2.0 * double(m * n * k) * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
  state.SetLabel(mode == mx::cpu::MatmulMode::kExact ? "mxfp4_e2m1 exact" : "mxfp4_e2m1 fast");
}

BENCHMARK(BM_Copy)
    ->ArgNames({"MiB", "threads"})
    ->Args({23, 1})
    ->Args({23, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MatmulDecode)->Apply(decode_args);
BENCHMARK(BM_CopyLayers)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ReadLayers)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MatmulDecodeLayers)->Apply(decode_args);
// GPT-2 124M's attention matrices: 306 KiB as MXFP4, where the threads' minimum share decides
// whether a second thread helps.
BENCHMARK(BM_MatmulDecodeLayers)
    ->ArgNames({"format", "fast", "n", "k", "threads"})
    ->ArgsProduct({{4}, {0}, {768}, {768}, {1, 2}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_SgemmDecodeLayers)
    ->ArgNames({"n", "k", "threads"})
    ->ArgsProduct({{768}, {768}, {1, 2}})
    ->Args({3072, 768, 2})
    ->Args({768, 3072, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_MatmulDecodeInCache)
    ->ArgNames({"format", "fast"})
    ->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8}, {0, 1}})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_MatmulRows)
    ->ArgNames({"fast", "m", "threads"})
    ->Args({0, 16, 2})
    ->Args({1, 16, 2})
    ->Args({0, 64, 2})
    ->Args({1, 64, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
