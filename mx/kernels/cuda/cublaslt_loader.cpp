#include "mx/kernels/cuda/cublaslt_loader.h"

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
  // The member and the symbol name are written once each; the member's type is the symbol's.
#define MX_BIND(member, function)                                           \
  static_assert(std::is_same_v<decltype(api.member), decltype(&function)>); \
  bind_symbol(library, api.member, #function, &missing)
  MX_BIND(create, cublasLtCreate);
  MX_BIND(destroy, cublasLtDestroy);
  MX_BIND(status_string, cublasLtGetStatusString);
  MX_BIND(version, cublasLtGetVersion);
  MX_BIND(matmul, cublasLtMatmul);
  MX_BIND(algo_config_get_attribute, cublasLtMatmulAlgoConfigGetAttribute);
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
  return toolkit_library_candidates(library_name());
}

std::optional<CublasLt> open_cublaslt(const std::vector<std::string>& candidates,
                                      std::string* error) {
  return open_api<CublasLt>("cuBLASLt", library_name(), candidates, bind_functions, error);
}

const CublasLt* cublaslt(std::string* error) {
  return open_once<CublasLt>([](std::string* e) { return open_cublaslt(cublaslt_candidates(), e); },
                             error);
}

}  // namespace mx::cuda
