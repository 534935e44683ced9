// Throughput of the CPU fast path: quantize and dequantize a 4096x4096 tensor to each format
// (nearest-even, FLOOR, 1x32 blocks). bytes_per_second (GiB/s) and GBps (10^9 bytes/s) count
// the float32/bfloat16 tensor's bytes: the input of quantize, the output of dequantize.
// Single-threaded by default so the figures read per core; --benchmark_filter=.../threads:N
// variants show the threaded scaling.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "mx/core/half.h"
#include "mx/kernels/cpu/quantize.h"

namespace {

constexpr int64_t kRows = 4096, kCols = 4096;

const std::vector<float>& input_f32() {
  static const std::vector<float> v = [] {
    std::vector<float> out(kRows * kCols);
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& x : out) x = normal(rng);
    return out;
  }();
  return v;
}

const std::vector<uint16_t>& input_bf16() {
  static const std::vector<uint16_t> v = [] {
    std::vector<uint16_t> out(kRows * kCols);
    const auto& f = input_f32();
    for (size_t i = 0; i < out.size(); ++i) out[i] = mx::float_to_bf16(f[i]);
    return out;
  }();
  return v;
}

mx::QuantSpec spec_for(int64_t format_index, int64_t rounding) {
  mx::QuantSpec spec;
  spec.format = static_cast<mx::ElementFormat>(format_index);
  spec.rounding = static_cast<mx::Rounding>(rounding);
  return spec;
}

// Google Benchmark prints bytes_per_second in units of 2^30; this counter is in 10^9 bytes/s.
benchmark::Counter decimal_rate(const benchmark::State& state, int64_t bytes_per_iteration) {
  return benchmark::Counter(double(bytes_per_iteration) * double(state.iterations()) / 1e9,
                            benchmark::Counter::kIsRate);
}

void set_label(benchmark::State& state, const mx::QuantSpec& spec, const char* dtype) {
  state.SetLabel(std::string(mx::traits(spec.format).mx_name) + " " + dtype + " " +
                 std::string(mx::rounding_name(spec.rounding)) + " " +
                 std::string(mx::cpu::target_name(mx::cpu::best_target())));
}

void BM_Quantize(benchmark::State& state) {
  const bool bf16 = state.range(0) == 1;
  const mx::QuantSpec spec = spec_for(state.range(1), state.range(2));
  const std::vector<int64_t> shape = {kRows, kCols};
  mx::cpu::Options options;
  options.threads = int(state.range(3));
  mx::MxTensor out;
  const void* data = bf16 ? static_cast<const void*>(input_bf16().data()) : input_f32().data();
  const mx::DType dtype = bf16 ? mx::DType::kBF16 : mx::DType::kF32;
  for (auto _ : state) {
    std::string error = mx::cpu::quantize(data, dtype, shape, spec, &out, options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out.elements.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * mx::dtype_size(dtype));
  state.counters["GBps"] = decimal_rate(state, kRows * kCols * mx::dtype_size(dtype));
  set_label(state, spec, bf16 ? "bf16" : "f32");
}

void BM_Dequantize(benchmark::State& state) {
  const bool bf16_out = state.range(0) == 1;
  const mx::QuantSpec spec = spec_for(state.range(1), 0);
  const std::vector<int64_t> shape = {kRows, kCols};
  mx::cpu::Options options;
  options.threads = int(state.range(3));
  mx::MxTensor q;
  mx::cpu::quantize(input_f32().data(), mx::DType::kF32, shape, spec, &q, options);
  std::vector<float> out(kRows * kCols);
  const mx::DType dtype = bf16_out ? mx::DType::kBF16 : mx::DType::kF32;
  for (auto _ : state) {
    std::string error = mx::cpu::dequantize(q, dtype, out.data(), options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * mx::dtype_size(dtype));
  state.counters["GBps"] = decimal_rate(state, kRows * kCols * mx::dtype_size(dtype));
  set_label(state, spec, bf16_out ? "-> bf16" : "-> f32");
}

// The same on a 128x1024 tensor, whose codes and output stay in a core's L2 cache: what decoding
// costs where memory does not limit it.
void BM_DequantizeInCache(benchmark::State& state) {
  constexpr int64_t kSmallRows = 128, kSmallCols = 1024;
  const bool bf16_out = state.range(0) == 1;
  const mx::QuantSpec spec = spec_for(state.range(1), 0);
  const std::vector<int64_t> shape = {kSmallRows, kSmallCols};
  mx::cpu::Options options;
  options.threads = 1;
  mx::MxTensor q;
  mx::cpu::quantize(input_f32().data(), mx::DType::kF32, shape, spec, &q, options);
  std::vector<float> out(kSmallRows * kSmallCols);
  const mx::DType dtype = bf16_out ? mx::DType::kBF16 : mx::DType::kF32;
  for (auto _ : state) {
    std::string error = mx::cpu::dequantize(q, dtype, out.data(), options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GBps"] = decimal_rate(state, kSmallRows * kSmallCols * mx::dtype_size(dtype));
  set_label(state, spec, bf16_out ? "-> bf16" : "-> f32");
}

void quantize_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bf16", "format", "round", "threads"});
  for (int dtype : {0, 1}) {
    for (int format = 0; format < mx::kElementFormatCount; ++format) b->Args({dtype, format, 0, 1});
  }
  // Stochastic rounding, and the threaded path, for the headline formats.
  for (int format : {0, 4}) {
    b->Args({0, format, 3, 1});
    b->Args({0, format, 0, 2});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

void dequantize_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"bf16", "format", "unused", "threads"});
  for (int dtype : {0, 1}) {
    for (int format = 0; format < mx::kElementFormatCount; ++format) b->Args({dtype, format, 0, 1});
  }
  b->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Column-wise blocks (32x1, along axis 0) and 2-D tiles: the gathered path.
void BM_QuantizeOrganisation(benchmark::State& state) {
  mx::QuantSpec spec;
  if (state.range(0) == 0) {
    spec.axis = 0;
  } else {
    spec.tile_rows = spec.tile_cols = int(state.range(0));
  }
  const std::vector<int64_t> shape = {kRows, kCols};
  mx::cpu::Options options;
  options.threads = 1;
  mx::MxTensor out;
  const float* data = input_f32().data();
  for (auto _ : state) {
    std::string error = mx::cpu::quantize(data, mx::DType::kF32, shape, spec, &out, options);
    if (!error.empty()) state.SkipWithError(error.c_str());
    benchmark::DoNotOptimize(out.elements.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kCols * 4);
  state.SetLabel(mx::describe(spec));
}

BENCHMARK(BM_Quantize)->Apply(quantize_args);
BENCHMARK(BM_QuantizeOrganisation)
    ->Arg(0)
    ->Arg(4)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Dequantize)->Apply(dequantize_args);
BENCHMARK(BM_DequantizeInCache)->Apply(dequantize_args)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
