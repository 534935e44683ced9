// cuBLASLt, opened on first use instead of linked.
//
// Why: linking libcublasLt.so makes the dynamic loader map its 541 MB and apply some 356k
// relocations at every start of every program that holds the CUDA backend, `mx --version`
// included: about 0.15 s and 200 MB of resident memory per start, although most runs never
// multiply on a GPU. Opened here on the first GPU product instead, it costs nothing until then.
//
// The pointers take their types from <cublasLt.h>'s declarations (nothing is linked), so a
// signature that changes with the toolkit is a compile error, not a wrong call.
#pragma once

#include <cublasLt.h>

#include <optional>
#include <string>
#include <vector>

namespace mx::cuda {

// The cuBLASLt functions mxkit calls.
struct CublasLt {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtGetStatusString) status_string = nullptr;
  decltype(&cublasLtGetVersion) version = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
  decltype(&cublasLtMatmulAlgoConfigGetAttribute) algo_config_get_attribute = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) algo_get_heuristic = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set_attribute = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) preference_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) preference_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) preference_set_attribute = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
};

// The places tried, in order: the library's name for the system's search path
// ("libcublasLt.so.<major>" of the headers compiled against), then the same file in the
// toolkit's library folder found at configure time (programs no longer carry it as a RUNPATH,
// since nothing links cuBLASLt).
std::vector<std::string> cublaslt_candidates();

// Opens the first of `candidates` that loads and looks up every function; nullopt with a
// one-line reason in *error (no such library, or a function missing from it) otherwise. The
// library stays open for the life of the process.
std::optional<CublasLt> open_cublaslt(const std::vector<std::string>& candidates,
                                      std::string* error);

// cuBLASLt from cublaslt_candidates(), opened once per process (safe from any thread); nullptr
// with the reason in *error when it cannot be opened.
const CublasLt* cublaslt(std::string* error);

}  // namespace mx::cuda
