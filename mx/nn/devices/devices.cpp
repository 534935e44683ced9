#include "mx/nn/devices/devices.h"

#include "mx/nn/cpu/cpu_backend.h"
#ifdef MX_HAVE_CUDA
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/cuda/nccl_communicator.h"
#endif

namespace mx::nn {

bool recipe_wants_f32_activations(const Recipe& recipe) {
  return recipe.name == "fp32" || recipe.name == "tf32";
}

std::string make_backend(const DeviceOptions& options, const Recipe& recipe,
                         std::unique_ptr<Backend>* out) {
  if (options.device == "cpu") {
    if (options.packed_products) return "--packed-products is for --device cuda";
    if (!options.product_algorithms.empty()) return "--product-algorithms is for --device cuda";
    if (options.tune_products) return "--tune-products is for --device cuda";
    if (recipe.name == "tf32")
      return "the tf32 recipe multiplies on TF32 tensor cores: use --device cuda";
    *out = std::make_unique<CpuBackend>(options.threads, options.fast_products
                                                             ? mx::cpu::MatmulMode::kFast
                                                             : mx::cpu::MatmulMode::kExact);
    return "";
  }
  if (options.device != "cuda") {
    return "unknown device '" + options.device + "' (expected cpu or cuda)";
  }
  if (options.fast_products) return "fast products from packed weights are for the CPU";
  if (has_block_rotation(recipe)) {
    return "--device cuda: recipe " + recipe.name +
           " rotates its blocks before casting them, which only the CPU backend does";
  }
#ifdef MX_HAVE_CUDA
  CudaBackendOptions o;
  o.act_type = recipe_wants_f32_activations(recipe) ? BufType::kF32 : BufType::kBF16;
  o.tf32 = recipe.name == "tf32";
  o.device = options.gpu;
  o.packed_products = options.packed_products;
  o.product_algorithms = options.product_algorithms;
  o.tune_products = options.tune_products;
  std::string error;
  *out = make_cuda_backend(o, &error);
  return *out != nullptr ? "" : "--device cuda: " + error;
#else
  (void)recipe;
  return "--device cuda: this build of mx has no CUDA (nvcc was not found when it was configured)";
#endif
}

#ifdef MX_HAVE_CUDA
int gpu_count(std::string* why) {
  return cuda_device_count(why);
}

std::string save_product_algorithms(Backend& backend, const std::string& path, size_t* products) {
  return write_cuda_product_algorithms(backend, path, products);
}

std::string make_rank_id(std::string* hex) {
  NcclUniqueId id;
  if (std::string e = make_nccl_unique_id(&id); !e.empty()) return e;
  static constexpr char kDigits[] = "0123456789abcdef";
  hex->clear();
  for (char c : id.bytes) {
    hex->push_back(kDigits[(static_cast<unsigned char>(c) >> 4) & 15]);
    hex->push_back(kDigits[static_cast<unsigned char>(c) & 15]);
  }
  return "";
}

std::string make_rank_communicator(Backend& backend, const std::string& id_hex, int rank, int world,
                                   std::unique_ptr<Communicator>* out) {
  NcclUniqueId id;
  if (id_hex.size() != 2 * id.bytes.size()) return "the rank id is not one made by mx train";
  auto digit = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = 0; i < id.bytes.size(); ++i) {
    const int hi = digit(id_hex[2 * i]), lo = digit(id_hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return "the rank id is not one made by mx train";
    id.bytes[i] = static_cast<char>(hi * 16 + lo);
  }
  return make_nccl_communicator(backend, id, rank, world, out);
}
#else
namespace {
constexpr const char* kNoCuda =
    "this build of mx has no CUDA (nvcc was not found when it was configured)";
}
int gpu_count(std::string* why) {
  *why = kNoCuda;
  return 0;
}
std::string save_product_algorithms(Backend&, const std::string&, size_t*) {
  return kNoCuda;
}
std::string make_rank_id(std::string*) {
  return kNoCuda;
}
std::string make_rank_communicator(Backend&, const std::string&, int, int,
                                   std::unique_ptr<Communicator>*) {
  return kNoCuda;
}
#endif

}  // namespace mx::nn
