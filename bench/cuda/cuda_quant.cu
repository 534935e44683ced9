// Bandwidth of the CUDA quantization kernels on a 16384 x 16384 input, as a fraction of a
// device-to-device copy of the same byte count (bytes read + bytes written). CUDA events,
// warm-up, median of 25 repetitions.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/cuda/cuda_timing.cuh"
#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/core/mx_tensor.h"
#include "mx/kernels/cuda/quantize_cuda.h"

namespace {

constexpr int kReps = 25;

// A call's median time; a call that returns an error message ends the program.
float median_ms(const std::function<std::string()>& fn) {
  if (const std::string e = fn(); !e.empty()) {
    std::fprintf(stderr, "error: %s\n", e.c_str());
    std::exit(1);
  }
  return mx::bench::median_ms(fn, kReps);
}

__global__ void fill_random(uint16_t* p, int64_t n, int f32) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint64_t z = uint64_t(i) * 0x9E3779B97F4A7C15ull + 12345;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  // Normal-ish values around 1: exponent in [120, 134], random mantissa and sign.
  const uint32_t bits = (uint32_t(z >> 63) << 31) | (uint32_t(120 + (z >> 40) % 15) << 23) |
                        (uint32_t(z) & 0x7FFFFFu);
  if (f32) {
    reinterpret_cast<uint32_t*>(p)[i] = bits;
  } else {
    p[i] = uint16_t(bits >> 16);
  }
}

}  // namespace

int main() {
  using namespace mx;
  std::string why;
  if (!cuda::cuda_device_available(&why)) {
    std::printf("no CUDA device: %s\n", why.c_str());
    return 0;
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  const int64_t M = 16384, K = 16384, n = M * K;
  const std::vector<int64_t> shape = {M, K};
  std::printf("device: %s, input %lld x %lld\n", prop.name, (long long)M, (long long)K);

  void *in16, *in32, *out, *el, *el2, *sc, *sc2;
  CHECK(cudaMalloc(&in16, n * 2));
  CHECK(cudaMalloc(&in32, n * 4));
  CHECK(cudaMalloc(&out, n * 4));
  CHECK(cudaMalloc(&el, n));
  CHECK(cudaMalloc(&el2, n));
  CHECK(cudaMalloc(&sc, n / 32));
  CHECK(cudaMalloc(&sc2, n / 32));
  fill_random<<<unsigned((n + 255) / 256), 256>>>(static_cast<uint16_t*>(in16), n, 0);
  fill_random<<<unsigned((n + 255) / 256), 256>>>(static_cast<uint16_t*>(in32), n, 1);
  CHECK(cudaDeviceSynchronize());

  // Copy bandwidth for a given byte count (read + written = 2 x bytes).
  auto copy_gbs = [&](int64_t bytes) {
    const float ms = median_ms([&] {
      cudaMemcpyAsync(out, in32, size_t(bytes), cudaMemcpyDeviceToDevice, nullptr);
      return std::string();
    });
    return 2.0 * double(bytes) / (ms * 1e6);
  };

  std::printf("%-40s %10s %10s %10s %8s\n", "kernel", "ms", "GB/s", "copy GB/s", "of copy");
  auto report = [&](const char* name, int64_t bytes_moved, const std::function<std::string()>& fn) {
    const float ms = median_ms(fn);
    const double gbs = double(bytes_moved) / (ms * 1e6);
    const double copy = copy_gbs(bytes_moved / 2);
    std::printf("%-40s %10.3f %10.1f %10.1f %7.1f%%\n", name, ms, gbs, copy, 100.0 * gbs / copy);
    std::fflush(stdout);
  };

  for (ElementFormat fmt : {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1}) {
    const int bits = traits(fmt).bits;
    const int64_t moved = n * 2 + n * bits / 8 + n / 32;
    for (auto [mode, mname] : {std::pair{Rounding::kNearestEven, "rne"},
                               std::pair{Rounding::kStochastic, "stochastic"}}) {
      for (auto [rule, rname] :
           {std::pair{ScaleRule::kFloor, "floor"}, std::pair{ScaleRule::kRceil, "rceil"}}) {
        if (mode == Rounding::kStochastic && rule != ScaleRule::kFloor) continue;
        QuantSpec spec;
        spec.format = fmt;
        spec.rounding = mode;
        spec.scale_rule = rule;
        const std::string name =
            "quantize bf16 " + std::string(traits(fmt).mx_name) + " " + mname + " " + rname;
        report(name.c_str(), moved, [&] {
          return cuda::quantize_cuda(in16, DType::kBF16, shape, spec, static_cast<uint8_t*>(el),
                                     static_cast<uint8_t*>(sc), nullptr, nullptr);
        });
      }
    }
    QuantSpec spec;
    spec.format = fmt;
    const std::string dual = "dual quantize bf16 " + std::string(traits(fmt).mx_name);
    report(dual.c_str(), n * 2 + 2 * (n * bits / 8 + n / 32), [&] {
      return cuda::quantize_dual_cuda(
          in16, DType::kBF16, shape, spec,
          {static_cast<uint8_t*>(el), static_cast<uint8_t*>(sc), nullptr},
          {static_cast<uint8_t*>(el2), static_cast<uint8_t*>(sc2), nullptr}, nullptr);
    });
    const std::string deq = "dequantize " + std::string(traits(fmt).mx_name) + " -> bf16";
    report(deq.c_str(), n * bits / 8 + n / 32 + n * 2, [&] {
      return cuda::dequantize_cuda(static_cast<uint8_t*>(el), static_cast<uint8_t*>(sc), nullptr,
                                   shape, spec, DType::kBF16, out, nullptr);
    });
    const std::string fq16 = "fake-quantize bf16->bf16 " + std::string(traits(fmt).mx_name);
    report(fq16.c_str(), n * 4, [&] {
      return cuda::fake_quantize_cuda(in16, DType::kBF16, shape, spec, DType::kBF16, out, nullptr);
    });
    // Blocks down columns (the backward products' operand casts in training): the square
    // tensor, GPT-2's activations at 16 x 1024 tokens, and its classifier gradient (an odd
    // width) at 4 x 1024.
    QuantSpec down = spec;
    down.axis = 0;
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{16384, 16384}, {16384, 768}, {4096, 50257}}) {
      const std::vector<int64_t> cshape = {rows, cols};
      const std::string name = "fake-quantize bf16 columns " + std::to_string(rows) + "x" +
                               std::to_string(cols) + " " + std::string(traits(fmt).mx_name);
      report(name.c_str(), rows * cols * 4, [&] {
        return cuda::fake_quantize_cuda(in16, DType::kBF16, cshape, down, DType::kBF16, out,
                                        nullptr);
      });
    }
    const std::string fq32 = "fake-quantize f32->f32 " + std::string(traits(fmt).mx_name);
    report(fq32.c_str(), n * 8, [&] {
      return cuda::fake_quantize_cuda(in32, DType::kF32, shape, spec, DType::kF32, out, nullptr);
    });
    // Ties away from zero: the rounding microxcaling's fake-quantize calls "nearest".
    QuantSpec away = spec;
    away.rounding = Rounding::kNearestAway;
    report((fq32 + " nearest-away").c_str(), n * 8, [&] {
      return cuda::fake_quantize_cuda(in32, DType::kF32, shape, away, DType::kF32, out, nullptr);
    });
  }
  // Both casts of the backward's output gradient, along the rows and down the columns: one read
  // (fake_quantize_dual_cuda) against the two single casts, bfloat16 in and out. GPT-2 124M's
  // gradients at 16 x 1024 tokens (width 768 and 3072) and its classifier's, padded to 50264.
  void* cols_out = nullptr;
  CHECK(cudaMalloc(&cols_out, size_t(n) * 2));
  for (ElementFormat fmt : {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1}) {
    QuantSpec along;
    along.format = fmt;
    QuantSpec down = along;
    down.axis = 0;
    for (auto [rows, cols] :
         {std::pair<int64_t, int64_t>{16384, 768}, {16384, 3072}, {4096, 50264}}) {
      const std::vector<int64_t> dshape = {rows, cols};
      const std::string size = std::to_string(rows) + "x" + std::to_string(cols) + " " +
                               std::string(traits(fmt).mx_name);
      report(("rows+columns, two casts " + size).c_str(), rows * cols * 8, [&] {
        if (std::string e = cuda::fake_quantize_cuda(in16, DType::kBF16, dshape, along,
                                                     DType::kBF16, out, nullptr);
            !e.empty()) {
          return e;
        }
        return cuda::fake_quantize_cuda(in16, DType::kBF16, dshape, down, DType::kBF16, cols_out,
                                        nullptr);
      });
      report(("rows+columns, one read " + size).c_str(), rows * cols * 6, [&] {
        return cuda::fake_quantize_dual_cuda(in16, DType::kBF16, dshape, along, down, out, cols_out,
                                             nullptr);
      });
    }
  }
  CHECK(cudaFree(cols_out));
  // Along the rows of GPT-2's classifier gradient (an odd width): every row starts at a different
  // offset from a 16-byte boundary. The cast for the input gradient, under each element width.
  for (ElementFormat fmt : {ElementFormat::kE4M3, ElementFormat::kE3M2, ElementFormat::kE2M1}) {
    for (Rounding mode : {Rounding::kNearestEven, Rounding::kStochastic}) {
      QuantSpec along;
      along.format = fmt;
      along.rounding = mode;
      const std::vector<int64_t> rshape = {4096, 50257};
      const std::string name = "fake-quantize bf16 rows 4096x50257 " +
                               std::string(traits(fmt).mx_name) +
                               (mode == Rounding::kStochastic ? " stochastic" : "");
      report(name.c_str(), 4096 * 50257 * int64_t{4}, [&] {
        return cuda::fake_quantize_cuda(in16, DType::kBF16, rshape, along, DType::kBF16, out,
                                        nullptr);
      });
    }
  }
  return 0;
}
