// The backend for a device name, so that the layers above (training, evaluation, the tools)
// choose where to run without depending on CUDA: "cpu", or "cuda" in builds that have it.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "mx/nn/backend.h"
#include "mx/nn/communicator.h"
#include "mx/nn/recipe.h"

namespace mx::nn {

struct DeviceOptions {
  std::string device = "cpu";  // "cpu" or "cuda"
  int threads = 0;             // CPU threads (0: all)
  // CPU: products from packed MX weights in fast mode (mx/kernels/cpu/mx_matmul.h), the
  // activations quantized to MXINT8 first; exact mode otherwise.
  bool fast_products = false;
  int gpu = 0;  // the CUDA device, for "cuda"
  // CUDA: MX recipes' linear layers multiply packed MX operands (CudaBackendOptions).
  bool packed_products = false;
  // CUDA: the cuBLASLt algorithms of a product algorithms file (mx/nn/product_algorithms.h), or
  // tuning them at each product's first run (CudaBackendOptions).
  std::string product_algorithms = {};
  bool tune_products = false;
};

// True for the recipes whose products are float32 (fp32, tf32): on a GPU their activations are
// float32 too; every other recipe's are bfloat16.
bool recipe_wants_f32_activations(const Recipe& recipe);

// A backend for `recipe`'s run on options.device, or the one-line reason there is none.
std::string make_backend(const DeviceOptions& options, const Recipe& recipe,
                         std::unique_ptr<Backend>* out);

// The product algorithms a CUDA backend has tuned or taken, written to `path` (their number in
// *products); "" or why not.
std::string save_product_algorithms(Backend& backend, const std::string& path, size_t* products);

// Data-parallel ranks on GPUs, one process each (nn/cuda/nccl_communicator.h): the number of
// GPUs this machine has (0, with *why, where none can be used); a new NCCL id as hex text, which
// rank 0's launcher makes and every rank is given; and a rank's communicator on its CUDA backend.
int gpu_count(std::string* why);
std::string make_rank_id(std::string* hex);
std::string make_rank_communicator(Backend& backend, const std::string& id_hex, int rank, int world,
                                   std::unique_ptr<Communicator>* out);

}  // namespace mx::nn
