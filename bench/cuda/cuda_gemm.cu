// Speed of the MX matrix products beside cuBLAS in the same process: cuBLAS BF16 (bfloat16 in
// and out, float32 accumulation) and cuBLASLt FP8 (E4M3, bfloat16 out; per-tensor scales, and
// float32 scales per 1 x 128 or 128 x 128 block, Fp8Scales) on the same M, N, K, beside the MX
// products: MXFP8 x MXFP8 through FP8 mma ("mx fp8-mma", E4M3 x E4M3) and each pair of formats
// through bfloat16 tensor cores ("mx A x B"), and for each pair what a user without them does:
// dequantize both operands to bfloat16, then cuBLAS BF16
// ("dq+cublas", the two dequantize passes timed with the product), and the library's own
// two-pass route, mx_gemm_dequantized ("mx 2-pass"). D = A * B^T with A [M, K] and
// B [N, K]. CUDA events, 3 warm-ups, median of 10. Prints TFLOP/s and the ratio to cuBLAS BF16.
//
// The weight-only product (X bfloat16 with M = 1..64 rows, W in the weight-tile layout) is timed
// beside cuBLAS BF16 on the same shapes, in microseconds per call; both cycle through enough
// copies of W (at least 256 MB) that W comes from memory, not from the 50 MB L2.
//
//   cuda_gemm [--shapes M,N,K[;M,N,K...]] [--formats e4m3xe4m3,e2m1xe2m1,...]
//             [--decode M,N,K[;...]] [--decode-formats e2m1,e3m2,...]
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cuda/cuda_timing.cuh"
#include "mx/core/format.h"
#include "mx/core/layout_weight_tiles.h"
#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/kernels/cuda/gemm_cublaslt_mx.h"
#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"

namespace {

float median_ms(const std::function<void()>& fn) {
  return mx::bench::median_ms(fn, 10);
}

// A library call's one-line error ends the program.
void exit_on_error(const std::string& e) {
  if (e.empty()) return;
  std::fprintf(stderr, "%s\n", e.c_str());
  std::exit(1);
}

__device__ uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Random bytes under `mask` (which keeps FP8 codes away from NaN and Inf).
__global__ void fill_bytes(uint8_t* p, int64_t n, uint8_t mask, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = uint8_t(mix(uint64_t(i) * 0x9E3779B97F4A7C15ull + seed)) & mask;
  }
}

// Scale bytes lowest .. lowest + count - 1.
__global__ void fill_scales(uint8_t* p, int64_t n, int lowest, int count, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    p[i] = uint8_t(lowest + mix(uint64_t(i) + seed) % count);
  }
}

// bfloat16 values near 1 with random signs and mantissas.
__global__ void fill_bf16(uint16_t* p, int64_t n, uint64_t seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const uint64_t z = mix(uint64_t(i) + seed);
    p[i] = uint16_t(((z >> 63) << 15) | ((120 + (z >> 40) % 15) << 7) | (z & 0x7F));
  }
}

struct Shape {
  int64_t m, n, k;
};

struct Pair {
  mx::ElementFormat a, b;
};

void* device_alloc(int64_t bytes) {
  void* p = nullptr;
  CHECK(cudaMalloc(&p, size_t(std::max<int64_t>(bytes, 16))));
  return p;
}

struct MxOperand {
  uint8_t* codes;
  uint8_t* scales;
};

MxOperand make_mx(mx::ElementFormat f, int64_t rows, int64_t k, uint64_t seed) {
  const int64_t code_bytes = mx::cuda::mx_row_code_bytes(f, k) * rows;
  const int64_t scale_bytes = mx::cuda::mx_row_scale_bytes(k) * rows;
  MxOperand op{static_cast<uint8_t*>(device_alloc(code_bytes)),
               static_cast<uint8_t*>(device_alloc(scale_bytes))};
  const uint8_t mask = mx::traits(f).bits == 8 && !mx::traits(f).is_integer ? 0xBF : 0xFF;
  fill_bytes<<<1024, 256>>>(op.codes, code_bytes, mask, seed);
  fill_scales<<<1024, 256>>>(op.scales, scale_bytes, 120, 15, seed + 1);  // 2^-7 .. 2^7
  CHECK(cudaGetLastError());
  return op;
}

// The scales of a cuBLASLt FP8 product: one per tensor, or (cuBLAS 12.9 on, Hopper included)
// a float32 scale per 128 values along K of each row of both operands, or per 128 x 128 tile of
// one of them (DeepSeek-V3's blocks). All ones here: the speed does not depend on them.
enum class Fp8Scales { kPerTensor, kRows128, kRows128Tiles128 };

// cuBLASLt FP8 E4M3 x E4M3 -> bfloat16, as D^T = B * A^T in column-major terms (the "TN"
// layout FP8 requires); with kRows128Tiles128, B [N, K] has the 1 x 128 scales and A [M, K] the
// 128 x 128 ones.
struct Fp8Gemm {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
  cublasLtMatmulAlgo_t algo{};
  float* one = nullptr;  // the scales, as many as the largest mode needs
  void* workspace = nullptr;
  size_t workspace_bytes = 64 << 20;
  bool ok = false;
};

Fp8Gemm make_fp8(cublasLtHandle_t lt, const Shape& s, Fp8Scales scales) {
  Fp8Gemm g;
  const std::vector<float> ones(size_t(std::max(s.m, s.n) * ((s.k + 127) / 128)), 1.0f);
  g.one = static_cast<float*>(device_alloc(int64_t(ones.size() * sizeof(float))));
  CHECK(cudaMemcpy(g.one, ones.data(), ones.size() * sizeof(float), cudaMemcpyHostToDevice));
  g.workspace = device_alloc(int64_t(g.workspace_bytes));
  CHECK_BLAS(cublasLtMatmulDescCreate(&g.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &g.one,
                                            sizeof(g.one)));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &g.one,
                                            sizeof(g.one)));
  if (scales != Fp8Scales::kPerTensor) {
    const int32_t rows = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    const int32_t tiles =
        scales == Fp8Scales::kRows128 ? rows : CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &rows,
                                              sizeof(rows)));
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(g.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &tiles,
                                              sizeof(tiles)));
  }
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&g.la, CUDA_R_8F_E4M3, s.k, s.n, s.k));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&g.lb, CUDA_R_8F_E4M3, s.k, s.m, s.k));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&g.ld, CUDA_R_16BF, s.n, s.m, s.n));
  cublasLtMatmulPreference_t pref;
  CHECK_BLAS(cublasLtMatmulPreferenceCreate(&pref));
  CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &g.workspace_bytes, sizeof(g.workspace_bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasLtMatmulAlgoGetHeuristic(lt, g.op, g.la, g.lb, g.ld, g.ld, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  g.ok = found > 0;
  g.algo = result.algo;
  return g;
}

// Microseconds per call: median over 10 repetitions of `calls` back-to-back calls.
double median_us(const std::function<void(int)>& fn, int calls) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < calls; ++i) fn(i);
  CHECK(cudaDeviceSynchronize());
  std::vector<float> t;
  for (int rep = 0; rep < 10; ++rep) {
    CHECK(cudaEventRecord(a));
    for (int i = 0; i < calls; ++i) fn(i);
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms * 1000.0f / float(calls));
  }
  CHECK(cudaEventDestroy(a));
  CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int copies_for(int64_t bytes) {
  return int(std::max<int64_t>(1, ((int64_t(256) << 20) + bytes - 1) / bytes));
}

void bench_decode(cublasHandle_t blas, const Shape& s,
                  const std::vector<mx::ElementFormat>& formats) {
  char name[64];
  std::snprintf(name, sizeof(name), "%ldx%ldx%ld", s.m, s.n, s.k);
  auto* x = static_cast<uint16_t*>(device_alloc(s.m * s.k * 2));
  auto* d = static_cast<uint16_t*>(device_alloc(s.m * s.n * 2));
  fill_bf16<<<1024, 256>>>(x, s.m * s.k, 7);
  const int64_t w16_bytes = s.n * s.k * 2;
  const int copies16 = copies_for(w16_bytes);
  std::vector<uint16_t*> w16(copies16);
  for (int c = 0; c < copies16; ++c) {
    w16[c] = static_cast<uint16_t*>(device_alloc(w16_bytes));
    fill_bf16<<<1024, 256>>>(w16[c], s.n * s.k, 8 + c);
  }
  const float alpha = 1.0f, beta = 0.0f;
  const double bf16_us = median_us(
      [&](int i) {
        CHECK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k),
                                &alpha, w16[i % copies16], CUDA_R_16BF, int(s.k), x, CUDA_R_16BF,
                                int(s.k), &beta, d, CUDA_R_16BF, int(s.n), CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
      },
      20);
  std::printf("%-22s %-14s %10.2f us %8.1f GB/s of W %8.2f\n", name, "cublas bf16", bf16_us,
              double(w16_bytes) / bf16_us * 1e-3, 1.0);
  for (uint16_t* p : w16) CHECK(cudaFree(p));
  for (mx::ElementFormat f : formats) {
    const int64_t code_bytes = mx::weight_tile_code_bytes(f, s.n, s.k);
    const int64_t scale_bytes = mx::weight_tile_scale_bytes(s.n, s.k);
    const int copies = copies_for(code_bytes + scale_bytes);
    std::vector<MxOperand> w(copies);
    const uint8_t mask = mx::traits(f).bits == 8 && !mx::traits(f).is_integer ? 0xBF : 0xFF;
    for (int c = 0; c < copies; ++c) {
      w[c] = {static_cast<uint8_t*>(device_alloc(code_bytes)),
              static_cast<uint8_t*>(device_alloc(scale_bytes))};
      fill_bytes<<<1024, 256>>>(w[c].codes, code_bytes, mask, 20 + c);
      // Weights' block maxima are below 1 in trained models: scales 2^-15 .. 2^0.
      fill_scales<<<1024, 256>>>(w[c].scales, scale_bytes, 112, 16, 40 + c);
    }
    mx::cuda::MxWeightOnlyArgs args;
    args.m = s.m;
    args.n = s.n;
    args.k = s.k;
    args.x = x;
    args.format = f;
    args.out_dtype = mx::DType::kBF16;
    args.d = d;
    const double us = median_us(
        [&](int i) {
          args.codes = w[i % copies].codes;
          args.scales = w[i % copies].scales;
          exit_on_error(mx::cuda::mx_gemm_weight_only_cuda(args, nullptr));
        },
        20);
    char kernel[32];
    std::snprintf(kernel, sizeof(kernel), "mx w-only %s", std::string(mx::traits(f).name).c_str());
    std::printf("%-22s %-14s %10.2f us %8.1f GB/s of W %8.2f\n", name, kernel, us,
                double(code_bytes + scale_bytes) / us * 1e-3, bf16_us / us);
    for (auto& c : w) {
      CHECK(cudaFree(c.codes));
      CHECK(cudaFree(c.scales));
    }
  }
  CHECK(cudaFree(x));
  CHECK(cudaFree(d));
  std::fflush(stdout);
}

double tflops(const Shape& s, float ms) {
  return 2.0 * double(s.m) * double(s.n) * double(s.k) / (ms * 1e-3) / 1e12;
}

// One row of the products' table: milliseconds, TFLOP/s and the ratio to cuBLAS BF16.
void print_row(const char* shape, const char* kernel, float ms, const Shape& s, double vs_bf16) {
  std::printf("%-22s %-12s %10.3f %10.1f %8.2f\n", shape, kernel, ms, tflops(s, ms), vs_bf16);
}

std::vector<Shape> parse_shapes(const std::string& text) {
  std::vector<Shape> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ';')) {
    Shape s{};
    if (std::sscanf(item.c_str(), "%ld,%ld,%ld", &s.m, &s.n, &s.k) != 3 || s.m <= 0 || s.n <= 0 ||
        s.k <= 0) {
      std::fprintf(stderr, "cuda_gemm: bad shape '%s' (want M,N,K)\n", item.c_str());
      std::exit(2);
    }
    out.push_back(s);
  }
  return out;
}

std::vector<Pair> parse_pairs(const std::string& text) {
  std::vector<Pair> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto x = item.find('x');
    const auto a = x == std::string::npos ? std::nullopt : mx::parse_format(item.substr(0, x));
    const auto b = x == std::string::npos ? std::nullopt : mx::parse_format(item.substr(x + 1));
    if (!a || !b) {
      std::fprintf(stderr, "cuda_gemm: bad format pair '%s' (want e.g. e4m3xe2m1)\n", item.c_str());
      std::exit(2);
    }
    out.push_back({*a, *b});
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // 8192^3; GPT-2 124M at 16 x 1024 tokens (QKV, attention out, MLP up, MLP down); Llama-7B
  // style MLP at 8192 tokens (up, down).
  std::string shapes_text =
      "8192,8192,8192;16384,2304,768;16384,768,768;16384,3072,768;16384,768,3072;"
      "8192,11008,4096;8192,4096,11008";
  std::string pairs_text = "e4m3xe4m3,e5m2xe4m3,e3m2xe3m2,e2m3xe2m3,e2m1xe2m1,int8xint8,e2m1xe4m3";
  // Decode: one token and 16 tokens through Llama-style 8192 x 8192 and 28672 x 8192 weights.
  std::string decode_text = "1,8192,8192;16,8192,8192;64,8192,8192;1,28672,8192;16,28672,8192";
  std::string decode_formats_text = "e2m1,e3m2,e4m3";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--shapes" && i + 1 < argc) {
      shapes_text = argv[++i];
    } else if (arg == "--formats" && i + 1 < argc) {
      pairs_text = argv[++i];
    } else if (arg == "--decode" && i + 1 < argc) {
      decode_text = argv[++i];
    } else if (arg == "--decode-formats" && i + 1 < argc) {
      decode_formats_text = argv[++i];
    } else {
      std::fprintf(stderr, "cuda_gemm: unknown argument '%s'\n", arg.c_str());
      return 2;
    }
  }
  const auto shapes = parse_shapes(shapes_text);
  const auto pairs = parse_pairs(pairs_text);
  const auto decode_shapes = decode_text.empty() ? std::vector<Shape>{} : parse_shapes(decode_text);
  std::vector<mx::ElementFormat> decode_formats;
  for (const Pair& p : parse_pairs(decode_formats_text.empty() ? "" : [&] {
         std::string pairs;  // reuse the pair parser: "e2m1" -> "e2m1xe2m1"
         std::stringstream ss(decode_formats_text);
         std::string item;
         while (std::getline(ss, item, ','))
           pairs += (pairs.empty() ? "" : ",") + item + "x" + item;
         return pairs;
       }())) {
    decode_formats.push_back(p.a);
  }
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device: %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
  cublasHandle_t blas;
  CHECK_BLAS(cublasCreate(&blas));
  cublasLtHandle_t lt;
  CHECK_BLAS(cublasLtCreate(&lt));

  std::printf("%-22s %-12s %10s %10s %8s\n", "shape MxNxK", "kernel", "ms", "TFLOP/s", "vs bf16");
  for (const Shape& s : shapes) {
    char name[64];
    std::snprintf(name, sizeof(name), "%ldx%ldx%ld", s.m, s.n, s.k);
    auto* a16 = static_cast<uint16_t*>(device_alloc(s.m * s.k * 2));
    auto* b16 = static_cast<uint16_t*>(device_alloc(s.n * s.k * 2));
    auto* d16 = static_cast<uint16_t*>(device_alloc(s.m * s.n * 2));
    fill_bf16<<<1024, 256>>>(a16, s.m * s.k, 1);
    fill_bf16<<<1024, 256>>>(b16, s.n * s.k, 2);
    const float alpha = 1.0f, beta = 0.0f;
    const float bf16_ms = median_ms([&] {
      CHECK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k), &alpha,
                              b16, CUDA_R_16BF, int(s.k), a16, CUDA_R_16BF, int(s.k), &beta, d16,
                              CUDA_R_16BF, int(s.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    });
    print_row(name, "cublas bf16", bf16_ms, s, 1.0);

    auto* a8 = static_cast<uint8_t*>(device_alloc(s.m * s.k));
    auto* b8 = static_cast<uint8_t*>(device_alloc(s.n * s.k));
    fill_bytes<<<1024, 256>>>(a8, s.m * s.k, 0xBF, 3);
    fill_bytes<<<1024, 256>>>(b8, s.n * s.k, 0xBF, 4);
    for (const auto& [scales, label] : {std::pair{Fp8Scales::kPerTensor, "cublaslt fp8"},
                                        std::pair{Fp8Scales::kRows128, "lt fp8 1x128"},
                                        std::pair{Fp8Scales::kRows128Tiles128, "lt fp8 128^2"}}) {
      Fp8Gemm fp8 = make_fp8(lt, s, scales);
      if (fp8.ok) {
        const float ms = median_ms([&] {
          CHECK_BLAS(cublasLtMatmul(lt, fp8.op, &alpha, b8, fp8.la, a8, fp8.lb, &beta, d16, fp8.ld,
                                    d16, fp8.ld, &fp8.algo, fp8.workspace, fp8.workspace_bytes,
                                    nullptr));
        });
        print_row(name, label, ms, s, bf16_ms / ms);
      } else {
        std::printf("%-22s %-12s %10s\n", name, label, "no algorithm");
      }
      CHECK(cudaFree(fp8.one));
      CHECK(cudaFree(fp8.workspace));
    }
    CHECK(cudaFree(a8));
    CHECK(cudaFree(b8));

    // One MX product on random operands of formats fa x fb, timed and printed as `label`.
    using Entry = std::string (*)(const mx::cuda::MxGemmArgs&, cudaStream_t);
    auto time_mx = [&](Entry entry, mx::ElementFormat fa, mx::ElementFormat fb, const char* label) {
      const MxOperand a = make_mx(fa, s.m, s.k, 5);
      const MxOperand b = make_mx(fb, s.n, s.k, 6);
      mx::cuda::MxGemmArgs args;
      args.m = s.m;
      args.n = s.n;
      args.k = s.k;
      args.a = {a.codes, a.scales, fa};
      args.b = {b.codes, b.scales, fb};
      args.out_dtype = mx::DType::kBF16;
      args.d = d16;
      const float ms = median_ms([&] { exit_on_error(entry(args, nullptr)); });
      print_row(name, label, ms, s, bf16_ms / ms);
      if (entry == mx::cuda::mx_gemm_cuda) {
        // The same operands dequantized to bfloat16 (into a16 and b16), then cuBLAS BF16.
        auto dequantize = [](const MxOperand& op, mx::ElementFormat f, int64_t rows, int64_t k,
                             uint16_t* out) {
          mx::QuantSpec spec;
          spec.format = f;
          const int64_t shape[2] = {rows, k};
          exit_on_error(mx::cuda::dequantize_cuda(op.codes, op.scales, nullptr, shape, spec,
                                                  mx::DType::kBF16, out, nullptr));
        };
        const float dq_ms = median_ms([&] {
          dequantize(a, fa, s.m, s.k, a16);
          dequantize(b, fb, s.n, s.k, b16);
          CHECK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(s.n), int(s.m), int(s.k),
                                  &alpha, b16, CUDA_R_16BF, int(s.k), a16, CUDA_R_16BF, int(s.k),
                                  &beta, d16, CUDA_R_16BF, int(s.n), CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
        });
        print_row(name, "dq+cublas", dq_ms, s, bf16_ms / dq_ms);
        const size_t ws_bytes = mx::cuda::mx_gemm_dequantized_workspace_bytes(args);
        void* ws = device_alloc(int64_t(ws_bytes));
        const float two_pass_ms = median_ms(
            [&] { exit_on_error(mx::cuda::mx_gemm_dequantized(args, ws, ws_bytes, lt, nullptr)); });
        print_row(name, "mx 2-pass", two_pass_ms, s, bf16_ms / two_pass_ms);
        CHECK(cudaFree(ws));
      }
      for (void* q : {static_cast<void*>(a.codes), static_cast<void*>(a.scales),
                      static_cast<void*>(b.codes), static_cast<void*>(b.scales)}) {
        CHECK(cudaFree(q));
      }
    };
    // MXFP8 x MXFP8 through FP8 mma with the per-32 scales.
    time_mx(mx::cuda::mx_gemm_fp8_cuda, mx::ElementFormat::kE4M3, mx::ElementFormat::kE4M3,
            "mx fp8-mma");
    for (const Pair& p : pairs) {
      char kernel[32];
      std::snprintf(kernel, sizeof(kernel), "mx %sx%s", std::string(mx::traits(p.a).name).c_str(),
                    std::string(mx::traits(p.b).name).c_str());
      time_mx(mx::cuda::mx_gemm_cuda, p.a, p.b, kernel);
    }
    CHECK(cudaFree(a16));
    CHECK(cudaFree(b16));
    CHECK(cudaFree(d16));
    std::fflush(stdout);
  }
  if (!decode_shapes.empty()) {
    std::printf("\nweight-only (decode)  kernel                 time      W read     vs bf16\n");
    for (const Shape& s : decode_shapes) {
      if (s.m > 64) {
        std::fprintf(stderr, "cuda_gemm: --decode M must be at most 64\n");
        return 2;
      }
      bench_decode(blas, s, decode_formats);
    }
  }
  cublasLtDestroy(lt);
  cublasDestroy(blas);
  return 0;
}
