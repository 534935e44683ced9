// Causal attention of the CUDA backend (mx/nn/cuda/attention.h) on tensor cores: forward and
// backward times for bfloat16 activations without MX casts (the bf16 recipe), and with MXFP6
// casts of P and dS (the mxfp6 recipe's attention), at GPT-2 and Llama shapes. CUDA events,
// warm-up, median of 20 repetitions. TFLOP/s counts the causal half of the products: forward
// 2 products, backward 5 (dV, dP, dQ, dK, and S again), of 2 * T * T / 2 * hs each per head.
// The PyTorch counterpart is bench/torch/sdpa_speed.py; run both in one call to compare.
//
//   cuda_attention [--batch B] [--seq-len T]
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/cuda/cuda_timing.cuh"
#include "mx/nn/cuda/attention.h"
#include "mx/nn/recipe.h"

namespace {

using mx::nn::cuda::AttnBackwardArgs;
using mx::nn::cuda::AttnDims;
using mx::nn::cuda::TileCast;

constexpr int kReps = 20;

// Uniform bfloat16 values in [-1, 1): a hash of the index, so that every run sees the same data.
__global__ void fill_uniform(uint16_t* p, int64_t n, uint32_t seed) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint32_t x = uint32_t(i) * 0x9E3779B9u ^ seed;
  x ^= x >> 16;
  x *= 0x85EBCA6Bu;
  x ^= x >> 13;
  const float u = float(x >> 8) * (1.0f / 8388608.0f) - 1.0f;
  uint32_t bits;
  memcpy(&bits, &u, sizeof bits);
  p[i] = uint16_t(bits >> 16);
}

uint16_t* random_bf16(int64_t n, uint32_t seed) {
  uint16_t* p = nullptr;
  CHECK(cudaMalloc(&p, size_t(n) * 2));
  fill_uniform<<<unsigned((n + 255) / 256), 256>>>(p, n, seed);
  CHECK(cudaGetLastError());
  return p;
}

struct Shape {
  const char* name;
  AttnDims d;
};

// P and dS cast as a recipe preset's activations are (a uniform preset casts every role alike),
// rounded as its vector ops are.
void run(const Shape& shape, const char* recipe_name) {
  const mx::nn::Recipe recipe = *mx::nn::recipe_preset(recipe_name);
  const mx::nn::OperandCast& role = recipe.act_fwd;
  const TileCast c{
      role.kind == mx::nn::OperandCast::Kind::kMx ? TileCast::Kind::kMx : TileCast::Kind::kBF16,
      role.spec};
  const bool round_p = recipe.bf16_vector_ops;
  const AttnDims& d = shape.d;
  const int64_t q_elems = d.b * d.t * d.nh * d.hs, kv_elems = d.b * d.t * d.nkv * d.hs;
  uint16_t *q = random_bf16(q_elems, 1), *k = random_bf16(kv_elems, 2),
           *v = random_bf16(kv_elems, 3), *dout = random_bf16(q_elems, 4);
  void *out, *dq, *dk, *dv, *pv;
  float *lse, *delta;
  CHECK(cudaMalloc(&out, size_t(q_elems) * 2));
  CHECK(cudaMalloc(&pv, size_t(q_elems) * 2));
  CHECK(cudaMalloc(&dq, size_t(q_elems) * 2));
  CHECK(cudaMalloc(&dk, size_t(kv_elems) * 2));
  CHECK(cudaMalloc(&dv, size_t(kv_elems) * 2));
  CHECK(cudaMalloc(&lse, size_t(d.b * d.nh * d.t) * 4));
  CHECK(cudaMalloc(&delta, size_t(d.b * d.nh * d.t) * 4));
  // As the backend runs them: under MX casts of P the forward also writes P v for the backward's
  // delta; otherwise the backward takes delta from the output.
  bool wrote_pv = false;
  const float fwd = mx::bench::median_ms(
      [&] {
        wrote_pv = mx::nn::cuda::attention_forward(out, lse, q, k, v, d, c, round_p, true, nullptr,
                                                   {pv, v});
      },
      kReps);
  AttnBackwardArgs a{q, k, dout, v, dout, k, q, lse, delta, dq, dk, dv};
  a.out = out;
  if (wrote_pv) a.pv = pv;
  const float bwd = mx::bench::median_ms(
      [&] { mx::nn::cuda::attention_backward(a, d, c, c, c, round_p, true, nullptr); }, kReps);
  CHECK(cudaGetLastError());
  const double product = 2.0 * double(d.t) * double(d.t) / 2.0 * double(d.hs) * double(d.b * d.nh);
  std::printf(
      "{\"shape\": \"%s\", \"recipe\": \"%s\", \"b\": %lld, \"t\": %lld, \"nh\": %lld, "
      "\"nkv\": %lld, \"hs\": %lld, \"forward_ms\": %.4f, \"backward_ms\": %.4f, "
      "\"forward_tflops\": %.1f, \"backward_tflops\": %.1f}\n",
      shape.name, recipe_name, (long long)d.b, (long long)d.t, (long long)d.nh, (long long)d.nkv,
      (long long)d.hs, fwd, bwd, 2 * product / fwd / 1e9, 5 * product / bwd / 1e9);
  for (void* p : {static_cast<void*>(q), static_cast<void*>(k), static_cast<void*>(v),
                  static_cast<void*>(dout), out, dq, dk, dv, pv, static_cast<void*>(lse),
                  static_cast<void*>(delta)}) {
    CHECK(cudaFree(p));
  }
}

int64_t flag(int argc, char** argv, const char* name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) {
      char* end = nullptr;
      const long long v = std::strtoll(argv[i + 1], &end, 10);
      if (*end != '\0' || v <= 0) {
        std::fprintf(stderr, "error: %s needs a positive integer, not '%s'\n", name, argv[i + 1]);
        std::exit(2);
      }
      return v;
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; i += 2) {
    if ((std::strcmp(argv[i], "--batch") != 0 && std::strcmp(argv[i], "--seq-len") != 0) ||
        i + 1 >= argc) {
      std::fprintf(stderr, "usage: cuda_attention [--batch B] [--seq-len T]\n");
      return 2;
    }
  }
  const int64_t b = flag(argc, argv, "--batch", 8), t = flag(argc, argv, "--seq-len", 1024);
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    std::fprintf(stderr, "error: no CUDA device\n");
    return 2;
  }
  std::fprintf(stderr, "device: %s\n", prop.name);
  const Shape shapes[] = {{"gpt2", {b, t, 12, 12, 64}},
                          {"llama-gqa", {b / 2 > 0 ? b / 2 : 1, t, 32, 8, 128}}};
  for (const Shape& s : shapes) {
    run(s, "bf16");
    run(s, "mxfp6");
  }
  return 0;
}
