// The CUDA backend's matrix products through cuBLASLt (cuda_backend_linear.cpp): one handle and one
// workspace, operands of the activation type, float32 accumulation (TF32 on request for float32
// operands). Each shape's algorithm is chosen once, at its first product: the heuristic's first
// candidate; or the one a product algorithms file names (mx/nn/product_algorithms.h); or, while
// tuning, the fastest of the heuristic's first kTunedCandidates, timed on that product's own
// operands.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mx/kernels/cuda/cublaslt_loader.h"
#include "mx/nn/buf.h"
#include "mx/nn/product_algorithms.h"

namespace mx::nn::cuda {

class LtProducts {
 public:
  using Epilogue = ProductEpilogue;
  using Shape = ProductShape;

  // How many of the heuristic's candidates tuning times.
  static constexpr int kTunedCandidates = 16;

  // Products on `stream` of operands of `ab_type`; null (and *error) where cuBLASLt, its handle
  // or its workspace is not to be had.
  static std::unique_ptr<LtProducts> create(cudaStream_t stream, BufType ab_type, bool tf32,
                                            std::string* error);
  ~LtProducts();
  LtProducts(const LtProducts&) = delete;
  LtProducts& operator=(const LtProducts&) = delete;

  // One product; `bias` (of C's type) and `aux` as the epilogue takes them. With `c_in`, beta
  // scales that matrix (C's shape, type and leading dimension) instead of C's own values. False
  // where cuBLASLt offers no algorithm for the shape and epilogue, or refuses the call; error()
  // then says why where there is more to say than that.
  bool run(const Shape& shape, const void* a, const void* b, void* c, float beta, const void* bias,
           void* aux = nullptr, const void* c_in = nullptr);
  const std::string& error() const { return error_; }

  // The choices of a product algorithms file, for the products of this object's operand type:
  // "" or why they cannot be taken (another GPU or cuBLASLt version wrote them).
  std::string take_algorithms(const ProductAlgorithms& algorithms);
  // From now on, a shape's first product times the heuristic's first kTunedCandidates on its
  // operands, outputs to scratch memory, then runs on the fastest (synchronizing the stream).
  void tune() { tuning_ = true; }
  // Every choice tuned or taken so far, as a file holds them.
  ProductAlgorithms algorithms() const;

  // One of the heuristic's candidates, timed: the algorithm, its place in the list, its median
  // time, and cuBLASLt's ids of its configuration.
  struct Candidate {
    cublasLtMatmulAlgo_t algo{};
    int index = 0;
    float ms = 0;
    int split_k = 1, reduction = 0, algo_id = 0, tile_id = 0, stages_id = 0, swizzling = 0;
    int cluster_id = 0;
    float waves = 0;  // the heuristic's estimate of the grid's waves over the GPU
  };
  // The heuristic's first `count` candidates for `shape` on these operands (as run() takes
  // them), each timed as the median of three rounds of `reps` products. The outputs (C, and the
  // forward GELU's aux) go to scratch memory: the operands are left as they were. Candidates
  // cuBLASLt refuses are left out; empty (error() says why) where no candidate runs.
  // Synchronizes the stream.
  std::vector<Candidate> time_candidates(const Shape& shape, const void* a, const void* b,
                                         const void* c_in, const void* bias, const void* aux,
                                         int count, int reps);

  // The handle, for other cuBLASLt calls on the same stream (the MX products).
  cublasLtHandle_t handle() const { return handle_; }

 private:
  struct Descriptors;
  LtProducts(const mx::cuda::CublasLt& api, cublasLtHandle_t handle, void* workspace,
             cudaStream_t stream, BufType ab_type, bool tf32)
      : api_(api),
        handle_(handle),
        workspace_(workspace),
        stream_(stream),
        ab_type_(ab_type),
        tf32_(tf32) {}
  bool describe(const Shape& g, const void* bias, const void* aux, Descriptors* d) const;
  std::vector<cublasLtMatmulHeuristicResult_t> heuristic(const Descriptors& d, int count) const;
  const cublasLtMatmulAlgo_t* algorithm(const Shape& g, const Descriptors& d, const void* a,
                                        const void* b, const void* c_in, const void* bias,
                                        const void* aux);
  std::string describe_device() const;

  const mx::cuda::CublasLt& api_;
  cublasLtHandle_t handle_;
  void* workspace_;
  cudaStream_t stream_;
  BufType ab_type_;
  bool tf32_;
  bool tuning_ = false;
  int candidates_ = kTunedCandidates;  // the length of the lists that choices index
  std::map<Shape, std::optional<cublasLtMatmulAlgo_t>> algorithms_;
  std::map<Shape, ProductAlgorithms::Choice> choices_;
  std::string error_;
};

}  // namespace mx::nn::cuda
