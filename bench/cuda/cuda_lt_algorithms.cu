// How much a training step could gain from another of cuBLASLt's algorithms: for each bfloat16
// product of a GPT-2 step as the CUDA backend runs it (the same LtProducts object, shapes,
// epilogues and output types), every algorithm among the heuristic's first `--candidates`,
// timed by LtProducts::time_candidates (the median of three rounds of `--reps` products). The
// backend takes the first unless given a product algorithms file (`mx bench train
// --tune-products`); the table gives its time, the fastest candidate's, and the fastest among
// those that need no reduction kernel after the product (no split-K, or split-K summed in place
// in the output). Both schemes that sum in the workspace, in the compute or the output type,
// take a second step. The sums weigh each product by how often a step runs it.
//
//   cuda_lt_algorithms [--tokens N] [--width C] [--vocab V] [--layers L] [--candidates K <= 64]
//                      [--reps R] [--all]
//
// --all prints every candidate of every product: index, split-K count, reduction scheme, time,
// and cuBLASLt's ids of its algorithm, tile, stages, swizzling and cluster shape (the
// cublasLtMatmulTile_t, ...Stages_t and ClusterShape_t values, as numbers), with the heuristic's
// estimate of its waves.
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "bench/cuda/cuda_timing.cuh"
#include "mx/nn/cuda/lt_products.h"

namespace {

using mx::nn::BufType;
using mx::nn::cuda::LtProducts;
using Epilogue = LtProducts::Epilogue;

constexpr int kMaxCandidates = 64;

// A product of the step, as LtProducts::Shape describes it, and how many a step runs.
struct Product {
  std::string name;
  int per_step;
  LtProducts::Shape shape;
};

// The products of one step at `tokens` rows, as the backend's linear layers issue them
// (cuda_backend_linear.cpp): each layer's forward product, its dx and its dW.
std::vector<Product> gpt2_products(int64_t t, int64_t c, int64_t vocab, int layers) {
  const int64_t v = (vocab + 7) / 8 * 8;  // the classifier's products run at the padded width
  const auto fwd = [&](const char* name, int64_t n, int64_t k, bool residual, Epilogue e) {
    return Product{name, layers, {true, false, n, t, k, k, k, n, BufType::kBF16, residual, e}};
  };
  const auto dx = [&](const char* name, int64_t k, int64_t n, Epilogue e) {
    return Product{name, layers, {false, false, k, t, n, k, n, k, BufType::kBF16, false, e}};
  };
  const auto dw = [&](const char* name, int64_t k, int64_t n, bool accumulate) {
    return Product{
        name, layers, {false, true, k, n, t, k, n, k, BufType::kF32, accumulate, Epilogue::kNone}};
  };
  std::vector<Product> p = {
      fwd("forward qkv (bias)", 3 * c, c, false, Epilogue::kBias),
      fwd("forward attn proj (bias, residual)", c, c, true, Epilogue::kBias),
      fwd("forward mlp up (bias, gelu)", 4 * c, c, false, Epilogue::kGeluAuxBias),
      fwd("forward mlp down (bias, residual)", c, 4 * c, true, Epilogue::kBias),
      dx("dx qkv", c, 3 * c, Epilogue::kNone),
      dx("dx attn proj", c, c, Epilogue::kNone),
      dx("dx mlp up", c, 4 * c, Epilogue::kNone),
      dx("dx mlp down (dgelu)", 4 * c, c, Epilogue::kDgelu),
      dw("dW qkv", c, 3 * c, true),
      dw("dW attn proj", c, c, true),
      dw("dW mlp up", c, 4 * c, true),
      dw("dW mlp down", 4 * c, c, true),
      fwd("forward classifier", v, c, false, Epilogue::kNone),
      dx("dx classifier", c, v, Epilogue::kNone),
      dw("dW classifier (scratch)", c, v, false),
  };
  for (size_t i = p.size() - 3; i < p.size(); ++i) p[i].per_step = 1;
  return p;
}

__global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint32_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint32_t z = uint32_t(i) * 2654435761u ^ seed;
    z ^= z >> 15;
    z *= 2246822519u;
    z ^= z >> 13;
    p[i] = __float2bfloat16((float(z & 0xffff) / 65536.0f - 0.5f) * 0.1f);
  }
}

const char* reduction_name(int r) {
  switch (r) {
    case CUBLASLT_REDUCTION_SCHEME_NONE:
      return "none";
    case CUBLASLT_REDUCTION_SCHEME_INPLACE:
      return "in place";
    case CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE:
      return "compute type";
    case CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE:
      return "output type";
    default:
      return "?";
  }
}

int64_t int_flag(int argc, char** argv, int* i, int64_t low) {
  char* end = nullptr;
  const std::string name = argv[*i];
  if (*i + 1 >= argc) {
    std::fprintf(stderr, "cuda_lt_algorithms: %s needs a value\n", name.c_str());
    std::exit(2);
  }
  const long long v = std::strtoll(argv[++*i], &end, 10);
  if (end == argv[*i] || *end != '\0' || v < low) {
    std::fprintf(stderr, "cuda_lt_algorithms: %s: expected an integer of at least %lld, got '%s'\n",
                 name.c_str(), static_cast<long long>(low), argv[*i]);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t tokens = 16384, width = 768, vocab = 50257, layers = 12, candidates = 16, reps = 20;
  bool all = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--tokens") {
      tokens = int_flag(argc, argv, &i, 8);
    } else if (arg == "--width") {
      width = int_flag(argc, argv, &i, 8);
    } else if (arg == "--vocab") {
      vocab = int_flag(argc, argv, &i, 1);
    } else if (arg == "--layers") {
      layers = int_flag(argc, argv, &i, 1);
    } else if (arg == "--candidates") {
      candidates = std::min<int64_t>(int_flag(argc, argv, &i, 1), kMaxCandidates);
    } else if (arg == "--reps") {
      reps = int_flag(argc, argv, &i, 1);
    } else if (arg == "--all") {
      all = true;
    } else {
      std::fprintf(stderr, "cuda_lt_algorithms: unknown argument '%s'\n", arg.c_str());
      return 2;
    }
  }
  if (width % 8 != 0 || tokens % 8 != 0) {
    std::fprintf(stderr, "cuda_lt_algorithms: --tokens and --width must be multiples of 8\n");
    return 2;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "cuda_lt_algorithms: no CUDA GPU\n");
    return 1;
  }
  const std::vector<Product> products = gpt2_products(tokens, width, vocab, int(layers));
  // Room for the largest operand, output and aux of any product.
  size_t ab = 0, c = 0;
  for (const Product& p : products) {
    const LtProducts::Shape& g = p.shape;
    ab = std::max({ab, size_t(g.m * g.k), size_t(g.n * g.k)});
    c = std::max(c, size_t(g.m * g.n) * size_t(mx::nn::buf_type_bytes(g.c_type)));
  }
  void *a = nullptr, *b = nullptr, *c_in = nullptr, *aux = nullptr, *bias = nullptr;
  CHECK(cudaMalloc(&a, ab * 2));
  CHECK(cudaMalloc(&b, ab * 2));
  CHECK(cudaMalloc(&c_in, c));
  CHECK(cudaMalloc(&aux, c));
  CHECK(cudaMalloc(&bias, size_t(std::max(vocab + 8, 4 * width)) * 2));
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(a), ab, 1);
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(b), ab, 2);
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(aux), c / 2, 3);
  fill_bf16<<<64, 256>>>(static_cast<__nv_bfloat16*>(bias), size_t(vocab + 8), 4);
  CHECK(cudaMemset(c_in, 0, c));
  CHECK(cudaDeviceSynchronize());
  std::string error;
  std::unique_ptr<LtProducts> lt = LtProducts::create(nullptr, BufType::kBF16, false, &error);
  if (lt == nullptr) {
    std::fprintf(stderr, "cuda_lt_algorithms: %s\n", error.c_str());
    return 1;
  }

  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf(
      "%s; %lld tokens, width %lld, vocabulary %lld, %lld layers; the heuristic's first "
      "%lld candidates, median of three rounds of %lld\n\n",
      prop.name, static_cast<long long>(tokens), static_cast<long long>(width),
      static_cast<long long>(vocab), static_cast<long long>(layers),
      static_cast<long long>(candidates), static_cast<long long>(reps));
  std::printf("%-36s %4s %8s %10s %10s %4s %10s %4s\n", "product", "runs", "listed", "first ms",
              "fastest", "#", "no-reduce", "#");
  double step_first = 0, step_fastest = 0, step_no_reduce = 0;
  for (const Product& p : products) {
    const std::vector<LtProducts::Candidate> timed = lt->time_candidates(
        p.shape, a, b, p.shape.accumulate ? c_in : nullptr, bias, aux, int(candidates), int(reps));
    if (timed.empty()) {
      std::printf("%-36s %4d   (%s)\n", p.name.c_str(), p.per_step, lt->error().c_str());
      continue;
    }
    const LtProducts::Candidate* fastest = &timed[0];
    const LtProducts::Candidate* no_reduce = nullptr;
    for (const LtProducts::Candidate& t : timed) {
      if (t.ms < fastest->ms) fastest = &t;
      const bool separate = t.reduction == CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE ||
                            t.reduction == CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
      if (!separate && (no_reduce == nullptr || t.ms < no_reduce->ms)) no_reduce = &t;
    }
    std::printf("%-36s %4d %8zu %10.4f %10.4f %4d", p.name.c_str(), p.per_step, timed.size(),
                timed[0].ms, fastest->ms, fastest->index);
    if (no_reduce != nullptr) {
      std::printf(" %10.4f %4d\n", no_reduce->ms, no_reduce->index);
    } else {
      std::printf(" %10s\n", "-");
    }
    if (timed[0].index != 0) {
      std::printf("    (the heuristic's first candidate was refused; \"first\" is #%d)\n",
                  timed[0].index);
    }
    if (all) {
      for (const LtProducts::Candidate& t : timed) {
        std::printf(
            "    #%-3d split-K %-3d reduction %-12s %10.4f ms   algo %d tile %d stages %d "
            "swizzle %d cluster %d waves %.2f\n",
            t.index, t.split_k, reduction_name(t.reduction), t.ms, t.algo_id, t.tile_id,
            t.stages_id, t.swizzling, t.cluster_id, double(t.waves));
      }
    }
    step_first += p.per_step * timed[0].ms;
    step_fastest += p.per_step * fastest->ms;
    step_no_reduce += p.per_step * (no_reduce != nullptr ? no_reduce->ms : timed[0].ms);
  }
  std::printf(
      "\nper step: first %.3f ms, fastest %.3f ms (%.3f less), fastest without a "
      "reduction kernel %.3f ms (%.3f less)\n",
      step_first, step_fastest, step_first - step_fastest, step_no_reduce,
      step_first - step_no_reduce);
  return 0;
}
