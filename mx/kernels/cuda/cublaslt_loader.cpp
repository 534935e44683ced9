#include "mx/kernels/cuda/cublaslt_loader.h"

#include <dlfcn.h>

#include "mx/kernels/cuda/library_loader.h"

#include <type_traits>

namespace mx::cuda {

namespace {

// The major version of the headers compiled against: its functions have these signatures.
std::string library_name() {
  return "libcublasLt.so." + std::to_string(CUBLAS_VER_MAJOR);
}

// Fills every pointer of `api` from `library`; the name of the first function missing, or "".
std::string bind_functions(void* library, CublasLt& api) {
  std::string missing;
  auto bind = [&](auto& slot, const char* symbol) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(library, symbol));
    if (slot == nullptr && missing.empty()) missing = symbol;
  };
  // The member and the symbol name are written once each; the member's type is the symbol's.
#define MX_BIND(member, function)                                           \
  static_assert(std::is_same_v<decltype(api.member), decltype(&function)>); \
  bind(api.member, #function)
  MX_BIND(create, cublasLtCreate);
  MX_BIND(destroy, cublasLtDestroy);
  MX_BIND(status_string, cublasLtGetStatusString);
  MX_BIND(matmul, cublasLtMatmul);
  MX_BIND(algo_get_heuristic, cublasLtMatmulAlgoGetHeuristic);
  MX_BIND(desc_create, cublasLtMatmulDescCreate);
  MX_BIND(desc_destroy, cublasLtMatmulDescDestroy);
  MX_BIND(desc_set_attribute, cublasLtMatmulDescSetAttribute);
  MX_BIND(preference_create, cublasLtMatmulPreferenceCreate);
  MX_BIND(preference_destroy, cublasLtMatmulPreferenceDestroy);
  MX_BIND(preference_set_attribute, cublasLtMatmulPreferenceSetAttribute);
  MX_BIND(layout_create, cublasLtMatrixLayoutCreate);
  MX_BIND(layout_destroy, cublasLtMatrixLayoutDestroy);
#undef MX_BIND
  return missing;
}

}  // namespace

std::vector<std::string> cublaslt_candidates() {
  std::vector<std::string> candidates{library_name()};
#ifdef MX_CUDA_TOOLKIT_LIBRARY_DIR
  candidates.push_back(std::string(MX_CUDA_TOOLKIT_LIBRARY_DIR) + "/" + library_name());
#endif
  return candidates;
}

std::optional<CublasLt> open_cublaslt(const std::vector<std::string>& candidates,
                                      std::string* error) {
  CublasLt api;
  std::string reasons;
  if (open_first_library(
          candidates, [&api](void* library) { return bind_functions(library, api); }, &reasons)) {
    return api;
  }
  if (error != nullptr) {
    *error = "cannot load cuBLASLt (" + library_name() +
             "): " + (reasons.empty() ? "no place to look for it" : reasons);
  }
  return std::nullopt;
}

const CublasLt* cublaslt(std::string* error) {
  struct Loaded {
    std::optional<CublasLt> api;
    std::string error;
  };
  static const Loaded loaded = [] {
    Loaded l;
    l.api = open_cublaslt(cublaslt_candidates(), &l.error);
    return l;
  }();
  if (!loaded.api && error != nullptr) *error = loaded.error;
  return loaded.api ? &*loaded.api : nullptr;
}

}  // namespace mx::cuda
