#include "mx/nn/devices/devices.h"

#include "mx/nn/cpu/cpu_backend.h"
#ifdef MX_HAVE_CUDA
#include "mx/nn/cuda/cuda_backend.h"
#endif

namespace mx::nn {

bool recipe_wants_f32_activations(const Recipe& recipe) {
  return recipe.name == "fp32" || recipe.name == "tf32";
}

std::string make_backend(const DeviceOptions& options, const Recipe& recipe,
                         std::unique_ptr<Backend>* out) {
  if (options.device == "cpu") {
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
#ifdef MX_HAVE_CUDA
  CudaBackendOptions o;
  o.act_type = recipe_wants_f32_activations(recipe) ? BufType::kF32 : BufType::kBF16;
  o.tf32 = recipe.name == "tf32";
  std::string error;
  *out = make_cuda_backend(o, &error);
  return *out != nullptr ? "" : "--device cuda: " + error;
#else
  (void)recipe;
  return "--device cuda: this build of mx has no CUDA (nvcc was not found when it was configured)";
#endif
}

}  // namespace mx::nn
