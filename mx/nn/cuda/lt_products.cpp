#include "mx/nn/cuda/lt_products.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <array>

#include "mx/io/cat.h"

namespace mx::nn::cuda {
namespace {

using io::cat;

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

cudaDataType cuda_type(BufType t) {
  return t == BufType::kBF16 ? CUDA_R_16BF : CUDA_R_32F;
}

bool writes_aux(ProductEpilogue e) {
  return e == ProductEpilogue::kGeluAux || e == ProductEpilogue::kGeluAuxBias;
}

size_t output_bytes(const ProductShape& g) {
  return size_t(g.ldc) * size_t(g.n) * size_t(buf_type_bytes(g.c_type));
}

std::string describe_shape(const ProductShape& g) {
  return cat(g.m, " x ", g.k, " by ", g.k, " x ", g.n);
}

// Device memory for the length of a scope.
struct Scratch {
  void* p = nullptr;
  explicit Scratch(size_t bytes) {
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      p = nullptr;
    }
  }
  ~Scratch() { cudaFree(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

// A pair of events on a stream, for timing what runs between them.
struct Events {
  cudaEvent_t start = nullptr, stop = nullptr;
  Events() {
    if (cudaEventCreate(&start) != cudaSuccess || cudaEventCreate(&stop) != cudaSuccess) {
      cudaGetLastError();
    }
  }
  ~Events() {
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  bool ok() const { return start != nullptr && stop != nullptr; }
};

}  // namespace

// cuBLASLt's description of one product: operation, layouts of A, B and C, and the epilogue
// with its pointers.
struct LtProducts::Descriptors {
  const mx::cuda::CublasLt& api;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  explicit Descriptors(const mx::cuda::CublasLt& lt) : api(lt) {}
  ~Descriptors() {
    for (cublasLtMatrixLayout_t l : {la, lb, lc}) {
      if (l != nullptr) api.layout_destroy(l);
    }
    if (desc != nullptr) api.desc_destroy(desc);
  }
  Descriptors(const Descriptors&) = delete;
  Descriptors& operator=(const Descriptors&) = delete;
};

std::unique_ptr<LtProducts> LtProducts::create(cudaStream_t stream, BufType ab_type, bool tf32,
                                               std::string* error) {
  const mx::cuda::CublasLt* api = mx::cuda::cublaslt(error);
  if (api == nullptr) return nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  if (api->create(&handle) != CUBLAS_STATUS_SUCCESS ||
      cudaMalloc(&workspace, kWorkspaceBytes) != cudaSuccess) {
    cudaGetLastError();
    *error = "cannot set up the GPU (cuBLASLt or its workspace)";
    if (handle != nullptr) api->destroy(handle);
    return nullptr;
  }
  return std::unique_ptr<LtProducts>(
      new LtProducts(*api, handle, workspace, stream, ab_type, tf32));
}

LtProducts::~LtProducts() {
  cudaFree(workspace_);
  api_.destroy(handle_);
}

bool LtProducts::describe(const Shape& g, const void* bias, const void* aux, Descriptors* d) const {
  const cudaDataType ab = cuda_type(ab_type_), ct = cuda_type(g.c_type);
  const cublasComputeType_t compute =
      ab_type_ == BufType::kF32 && tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  auto set = [&](cublasLtMatmulDescAttributes_t attribute, const auto& value) {
    return api_.desc_set_attribute(d->desc, attribute, &value, sizeof value) ==
           CUBLAS_STATUS_SUCCESS;
  };
  bool ok =
      api_.desc_create(&d->desc, compute, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
      set(CUBLASLT_MATMUL_DESC_TRANSA, ta) && set(CUBLASLT_MATMUL_DESC_TRANSB, tb) &&
      api_.layout_create(&d->la, ab, uint64_t(g.trans_a ? g.k : g.m),
                         uint64_t(g.trans_a ? g.m : g.k), g.lda) == CUBLAS_STATUS_SUCCESS &&
      api_.layout_create(&d->lb, ab, uint64_t(g.trans_b ? g.n : g.k),
                         uint64_t(g.trans_b ? g.k : g.n), g.ldb) == CUBLAS_STATUS_SUCCESS &&
      api_.layout_create(&d->lc, ct, uint64_t(g.m), uint64_t(g.n), g.ldc) == CUBLAS_STATUS_SUCCESS;
  auto set_bias = [&] {
    return set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias) &&
           set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, ct);
  };
  auto set_aux = [&] {
    return set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, aux) &&
           set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, g.ldc);
  };
  if (!ok) return false;
  switch (g.epilogue) {
    case Epilogue::kNone:
      return true;
    case Epilogue::kBias:
      return set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS) && set_bias();
    case Epilogue::kGeluAux:
      return set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_GELU_AUX) && set_aux();
    case Epilogue::kGeluAuxBias:
      return set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_GELU_AUX_BIAS) && set_bias() &&
             set_aux();
    case Epilogue::kDgelu:
      return set(CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_DGELU) && set_aux();
  }
  return false;
}

// The heuristic's first `count` candidates (fewer where it knows fewer; none where it fails).
std::vector<cublasLtMatmulHeuristicResult_t> LtProducts::heuristic(const Descriptors& d,
                                                                   int count) const {
  std::vector<cublasLtMatmulHeuristicResult_t> list(size_t(std::max(count, 1)));
  cublasLtMatmulPreference_t pref = nullptr;
  const size_t workspace = kWorkspaceBytes;
  int found = 0;
  if (api_.preference_create(&pref) != CUBLAS_STATUS_SUCCESS ||
      api_.preference_set_attribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                    sizeof workspace) != CUBLAS_STATUS_SUCCESS ||
      api_.algo_get_heuristic(handle_, d.desc, d.la, d.lb, d.lc, d.lc, pref, int(list.size()),
                              list.data(), &found) != CUBLAS_STATUS_SUCCESS) {
    found = 0;
  }
  if (pref != nullptr) api_.preference_destroy(pref);
  list.resize(size_t(std::max(found, 0)));
  return list;
}

std::vector<LtProducts::Candidate> LtProducts::time_candidates(const Shape& g, const void* a,
                                                               const void* b, const void* c_in,
                                                               const void* bias, const void* aux,
                                                               int count, int reps) {
  Scratch out(output_bytes(g)), aux_out(writes_aux(g.epilogue) ? output_bytes(g) : 0);
  Events events;
  if (out.p == nullptr || (writes_aux(g.epilogue) && aux_out.p == nullptr) || !events.ok()) {
    error_ = cat("no memory to time the candidates for ", describe_shape(g));
    return {};
  }
  Descriptors d(api_);
  if (!describe(g, bias, writes_aux(g.epilogue) ? aux_out.p : aux, &d)) {
    error_ = cat("cuBLASLt cannot describe ", describe_shape(g));
    return {};
  }
  const std::vector<cublasLtMatmulHeuristicResult_t> list = heuristic(d, count);
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  const void* c = c_in != nullptr ? c_in : out.p;
  std::vector<Candidate> timed;
  for (size_t i = 0; i < list.size(); ++i) {
    const cublasLtMatmulAlgo_t& algo = list[i].algo;
    const auto product = [&] {
      return api_.matmul(handle_, d.desc, &alpha, a, d.la, b, d.lb, &beta, c, d.lc, out.p, d.lc,
                         &algo, workspace_, kWorkspaceBytes, stream_) == CUBLAS_STATUS_SUCCESS;
    };
    if (!product()) continue;  // listed, yet refused for this problem
    std::array<float, 3> rounds{};
    bool ok = true;
    for (float& ms : rounds) {
      ok = ok && cudaEventRecord(events.start, stream_) == cudaSuccess;
      for (int r = 0; ok && r < reps; ++r) ok = product();
      ok = ok && cudaEventRecord(events.stop, stream_) == cudaSuccess &&
           cudaEventSynchronize(events.stop) == cudaSuccess &&
           cudaEventElapsedTime(&ms, events.start, events.stop) == cudaSuccess;
      ms /= float(std::max(reps, 1));
    }
    if (!ok) {
      cudaGetLastError();
      continue;
    }
    std::sort(rounds.begin(), rounds.end());
    Candidate t;
    t.algo = algo;
    t.index = int(i);
    t.ms = rounds[1];
    t.waves = list[i].wavesCount;
    const auto config = [&](cublasLtMatmulAlgoConfigAttributes_t attribute, auto* value) {
      size_t written = 0;
      api_.algo_config_get_attribute(&algo, attribute, value, sizeof *value, &written);
    };
    uint16_t cluster = 0;
    config(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &t.split_k);
    config(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &t.reduction);
    if (t.split_k <= 1) t.reduction = CUBLASLT_REDUCTION_SCHEME_NONE;
    config(CUBLASLT_ALGO_CONFIG_ID, &t.algo_id);
    config(CUBLASLT_ALGO_CONFIG_TILE_ID, &t.tile_id);
    config(CUBLASLT_ALGO_CONFIG_STAGES_ID, &t.stages_id);
    config(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &t.swizzling);
    config(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster);
    t.cluster_id = cluster;
    timed.push_back(t);
  }
  if (timed.empty()) error_ = cat("cuBLASLt runs no candidate for ", describe_shape(g));
  return timed;
}

// The algorithm for a shape, chosen at its first product (the heuristic's query costs more host
// time than many of the products take on the GPU); nullptr where there is none.
const cublasLtMatmulAlgo_t* LtProducts::algorithm(const Shape& g, const Descriptors& d,
                                                  const void* a, const void* b, const void* c_in,
                                                  const void* bias, const void* aux) {
  auto [it, inserted] = algorithms_.try_emplace(g);
  if (!inserted) return it->second ? &*it->second : nullptr;
  if (const auto chosen = choices_.find(g); chosen != choices_.end()) {
    const std::vector<cublasLtMatmulHeuristicResult_t> list = heuristic(d, candidates_);
    if (size_t(chosen->second.candidate) < list.size()) {
      it->second = list[size_t(chosen->second.candidate)].algo;
    } else {
      error_ = cat("the product algorithms' candidate ", chosen->second.candidate, " for ",
                   describe_shape(g), " is not among cuBLASLt's ", list.size());
    }
  } else if (tuning_) {
    const std::vector<Candidate> timed =
        time_candidates(g, a, b, c_in, bias, aux, candidates_, /*reps=*/5);
    const Candidate* fastest = nullptr;
    ProductAlgorithms::Choice choice;
    for (const Candidate& t : timed) {
      if (t.index == 0) choice.first_ms = t.ms;
      if (fastest == nullptr || t.ms < fastest->ms) fastest = &t;
    }
    if (fastest != nullptr) {
      it->second = fastest->algo;
      choice.candidate = fastest->index, choice.ms = fastest->ms;
    } else {
      // Nothing timed (no scratch memory, or no candidate runs): as without tuning, and no
      // error of its own, so that a product without a fused kernel still takes the unfused one.
      error_.clear();
      const std::vector<cublasLtMatmulHeuristicResult_t> first = heuristic(d, 1);
      if (first.empty()) return nullptr;
      it->second = first[0].algo;
    }
    choices_.emplace(g, choice);
  } else {
    const std::vector<cublasLtMatmulHeuristicResult_t> list = heuristic(d, 1);
    if (!list.empty()) it->second = list[0].algo;
  }
  return it->second ? &*it->second : nullptr;
}

bool LtProducts::run(const Shape& g, const void* a, const void* b, void* c, float beta,
                     const void* bias, void* aux, const void* c_in) {
  error_.clear();
  Descriptors d(api_);
  const float alpha = 1.0f;
  if (!describe(g, bias, aux, &d)) return false;
  const cublasLtMatmulAlgo_t* algo = algorithm(g, d, a, b, c_in != nullptr ? c_in : c, bias, aux);
  return algo != nullptr && api_.matmul(handle_, d.desc, &alpha, a, d.la, b, d.lb, &beta,
                                        c_in != nullptr ? c_in : c, d.lc, c, d.lc, algo, workspace_,
                                        kWorkspaceBytes, stream_) == CUBLAS_STATUS_SUCCESS;
}

std::string LtProducts::describe_device() const {
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();
    return "?";
  }
  return prop.name;
}

std::string LtProducts::take_algorithms(const ProductAlgorithms& algorithms) {
  const std::string device = describe_device();
  const int64_t version = int64_t(api_.version());
  if (algorithms.device != device || algorithms.cublaslt != version) {
    return cat("chosen on ", algorithms.device, " with cuBLASLt ", algorithms.cublaslt,
               ", not on this ", device, " with cuBLASLt ", version);
  }
  candidates_ = algorithms.candidates;
  for (const auto& [key, choice] : algorithms.choices) {
    if (key.ab_type == ab_type_ && key.tf32 == tf32_) choices_.insert_or_assign(key.shape, choice);
  }
  return "";
}

ProductAlgorithms LtProducts::algorithms() const {
  ProductAlgorithms out;
  out.device = describe_device();
  out.cublaslt = int64_t(api_.version());
  out.candidates = candidates_;
  for (const auto& [shape, choice] : choices_) {
    out.choices.emplace(ProductAlgorithms::Key{ab_type_, tf32_, shape}, choice);
  }
  return out;
}

}  // namespace mx::nn::cuda
