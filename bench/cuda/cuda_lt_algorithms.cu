// How much a training step could gain from another of cuBLASLt's algorithms: for each bfloat16
// product of a GPT-2 step as the CUDA backend runs it (mx/nn/cuda/lt_products.cpp: float32
// accumulation, 32 MB workspace, the same epilogues, layouts and output types), every algorithm
// among the heuristic's first `--candidates`, timed. The backend takes the first; the table
// gives its time, the fastest candidate's, and the fastest among those that need no reduction
// kernel after the product (no split-K, or split-K summed in place in the output). Both
// schemes that sum in the workspace, in the compute or the output type, take a second step.
// The sums weigh each product by how often a step runs it.
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
#include <string>
#include <vector>

#include "bench/cuda/cuda_timing.cuh"

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kMaxCandidates = 64;

// Column-major C[m, n] = op(A) op(B) (+ beta C), as LtProducts::Shape describes it.
struct Product {
  std::string name;
  int per_step;  // how many a step runs
  bool trans_a, trans_b;
  int64_t m, n, k;
  bool c_f32;
  float beta;
  cublasLtEpilogue_t epilogue;
};

// The products of one step at `tokens` rows, as the backend's linear layers issue them
// (cuda_backend_linear.cpp): each layer's forward product, its dx and its dW.
std::vector<Product> gpt2_products(int64_t t, int64_t c, int64_t vocab, int layers) {
  const int64_t v = (vocab + 7) / 8 * 8;  // the classifier's products run at the padded width
  const auto fwd = [&](const char* name, int64_t n, int64_t k, float beta, cublasLtEpilogue_t e) {
    return Product{name, layers, true, false, n, t, k, false, beta, e};
  };
  const auto dx = [&](const char* name, int64_t k, int64_t n, cublasLtEpilogue_t e) {
    return Product{name, layers, false, false, k, t, n, false, 0.0f, e};
  };
  const auto dw = [&](const char* name, int64_t k, int64_t n, float beta) {
    return Product{name, layers, false, true, k, n, t, true, beta, CUBLASLT_EPILOGUE_DEFAULT};
  };
  std::vector<Product> p = {
      fwd("forward qkv (bias)", 3 * c, c, 0.0f, CUBLASLT_EPILOGUE_BIAS),
      fwd("forward attn proj (bias, residual)", c, c, 1.0f, CUBLASLT_EPILOGUE_BIAS),
      fwd("forward mlp up (bias, gelu)", 4 * c, c, 0.0f, CUBLASLT_EPILOGUE_GELU_AUX_BIAS),
      fwd("forward mlp down (bias, residual)", c, 4 * c, 1.0f, CUBLASLT_EPILOGUE_BIAS),
      dx("dx qkv", c, 3 * c, CUBLASLT_EPILOGUE_DEFAULT),
      dx("dx attn proj", c, c, CUBLASLT_EPILOGUE_DEFAULT),
      dx("dx mlp up", c, 4 * c, CUBLASLT_EPILOGUE_DEFAULT),
      dx("dx mlp down (dgelu)", 4 * c, c, CUBLASLT_EPILOGUE_DGELU),
      dw("dW qkv", c, 3 * c, 1.0f),
      dw("dW attn proj", c, c, 1.0f),
      dw("dW mlp up", c, 4 * c, 1.0f),
      dw("dW mlp down", 4 * c, c, 1.0f),
      fwd("forward classifier", v, c, 0.0f, CUBLASLT_EPILOGUE_DEFAULT),
      dx("dx classifier", c, v, CUBLASLT_EPILOGUE_DEFAULT),
      dw("dW classifier (scratch)", c, v, 0.0f),
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

struct Buffers {
  void *a, *b, *c, *aux, *bias, *workspace;
};

// A candidate's configuration (cuBLASLt's ids, printed as numbers) and time.
struct Timed {
  int index;
  int split_k;
  int reduction;
  float ms;
  int algo_id = 0, tile_id = 0, stages_id = 0, swizzling = 0;
  uint16_t cluster_id = 0;
  float waves = 0;  // the heuristic's estimate of the grid's waves over the GPU
};

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

// Every candidate of the heuristic's first `candidates` for `p`, timed (median of `reps`).
std::vector<Timed> time_candidates(cublasLtHandle_t handle, const Product& p, const Buffers& buf,
                                   int candidates, int reps) {
  cublasLtMatmulDesc_t desc = nullptr;
  CHECK_BLAS(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cudaDataType ct = p.c_f32 ? CUDA_R_32F : CUDA_R_16BF;
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &p.epilogue,
                                            sizeof p.epilogue));
  if (p.epilogue == CUBLASLT_EPILOGUE_BIAS || p.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) {
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &buf.bias,
                                              sizeof buf.bias));
    CHECK_BLAS(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &ct, sizeof ct));
  }
  if (p.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || p.epilogue == CUBLASLT_EPILOGUE_DGELU) {
    const int64_t ld = p.m;
    CHECK_BLAS(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                              &buf.aux, sizeof buf.aux));
    CHECK_BLAS(
        cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld));
  }
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, p.trans_a ? p.k : p.m,
                                        p.trans_a ? p.m : p.k, p.trans_a ? p.k : p.m));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, p.trans_b ? p.n : p.k,
                                        p.trans_b ? p.k : p.n, p.trans_b ? p.n : p.k));
  CHECK_BLAS(cublasLtMatrixLayoutCreate(&lc, ct, p.m, p.n, p.m));
  cublasLtMatmulPreference_t pref = nullptr;
  CHECK_BLAS(cublasLtMatmulPreferenceCreate(&pref));
  CHECK_BLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &kWorkspaceBytes, sizeof kWorkspaceBytes));
  cublasLtMatmulHeuristicResult_t found[kMaxCandidates] = {};
  int count = 0;
  CHECK_BLAS(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, lc, pref, candidates, found,
                                            &count));
  std::vector<Timed> timed;
  const float alpha = 1.0f;
  for (int i = 0; i < count; ++i) {
    const cublasLtMatmulAlgo_t& algo = found[i].algo;
    const auto run = [&] {
      return cublasLtMatmul(handle, desc, &alpha, buf.a, la, buf.b, lb, &p.beta, buf.c, lc, buf.c,
                            lc, &algo, buf.workspace, kWorkspaceBytes, nullptr);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;  // listed, yet refused for this problem
    Timed t{i, 1, CUBLASLT_REDUCTION_SCHEME_NONE, 0.0f};
    const auto config = [&](cublasLtMatmulAlgoConfigAttributes_t attribute, auto* value) {
      size_t written = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&algo, attribute, value, sizeof *value, &written);
    };
    config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &t.split_k);
    config(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &t.reduction);
    if (t.split_k <= 1) t.reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
    config(CUBLASLT_ALGO_CONFIG_ID, &t.algo_id);
    config(CUBLASLT_ALGO_CONFIG_TILE_ID, &t.tile_id);
    config(CUBLASLT_ALGO_CONFIG_STAGES_ID, &t.stages_id);
    config(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &t.swizzling);
    config(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &t.cluster_id);
    t.waves = found[i].wavesCount;
    t.ms = mx::bench::median_ms([&] { CHECK_BLAS(run()); }, reps);
    timed.push_back(t);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  for (cublasLtMatrixLayout_t l : {la, lb, lc}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  return timed;
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
    ab = std::max({ab, size_t(p.m * p.k), size_t(p.n * p.k)});
    c = std::max(c, size_t(p.m * p.n) * (p.c_f32 ? 4 : 2));
  }
  Buffers buf{};
  CHECK(cudaMalloc(&buf.a, ab * 2));
  CHECK(cudaMalloc(&buf.b, ab * 2));
  CHECK(cudaMalloc(&buf.c, c));
  CHECK(cudaMalloc(&buf.aux, c));
  CHECK(cudaMalloc(&buf.bias, size_t(std::max(vocab + 8, 4 * width)) * 2));
  CHECK(cudaMalloc(&buf.workspace, kWorkspaceBytes));
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(buf.a), ab, 1);
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(buf.b), ab, 2);
  fill_bf16<<<1024, 256>>>(static_cast<__nv_bfloat16*>(buf.aux), c / 2, 3);
  fill_bf16<<<64, 256>>>(static_cast<__nv_bfloat16*>(buf.bias), size_t(vocab + 8), 4);
  CHECK(cudaMemset(buf.c, 0, c));
  CHECK(cudaDeviceSynchronize());
  cublasLtHandle_t handle = nullptr;
  CHECK_BLAS(cublasLtCreate(&handle));

  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf(
      "%s; %lld tokens, width %lld, vocabulary %lld, %lld layers; the heuristic's first "
      "%lld candidates, median of %lld\n\n",
      prop.name, static_cast<long long>(tokens), static_cast<long long>(width),
      static_cast<long long>(vocab), static_cast<long long>(layers),
      static_cast<long long>(candidates), static_cast<long long>(reps));
  std::printf("%-36s %4s %8s %10s %10s %4s %10s %4s\n", "product", "runs", "listed", "first ms",
              "fastest", "#", "no-reduce", "#");
  double step_first = 0, step_fastest = 0, step_no_reduce = 0;
  for (const Product& p : products) {
    const std::vector<Timed> timed = time_candidates(handle, p, buf, int(candidates), int(reps));
    if (timed.empty()) {
      std::printf("%-36s %4d   (no algorithm)\n", p.name.c_str(), p.per_step);
      continue;
    }
    const Timed* fastest = &timed[0];
    const Timed* no_reduce = nullptr;
    for (const Timed& t : timed) {
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
      for (const Timed& t : timed) {
        std::printf(
            "    #%-3d split-K %-3d reduction %-12s %10.4f ms   algo %d tile %d stages %d "
            "swizzle %d cluster %d waves %.2f\n",
            t.index, t.split_k, reduction_name(t.reduction), t.ms, t.algo_id, t.tile_id,
            t.stages_id, t.swizzling, int(t.cluster_id), double(t.waves));
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
  cublasLtDestroy(handle);
  return 0;
}
