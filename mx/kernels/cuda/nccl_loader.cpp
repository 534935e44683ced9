#include "mx/kernels/cuda/nccl_loader.h"

#include <dlfcn.h>

#include <type_traits>

#include "mx/kernels/cuda/library_loader.h"

namespace mx::cuda {
namespace {

std::string library_name() {
  return "libnccl.so." + std::to_string(NCCL_MAJOR);
}

std::string bind_functions(void* library, Nccl& api) {
  std::string missing;
  auto bind = [&](auto& slot, const char* symbol) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(dlsym(library, symbol));
    if (slot == nullptr && missing.empty()) missing = symbol;
  };
#define MX_BIND(member, function)                                           \
  static_assert(std::is_same_v<decltype(api.member), decltype(&function)>); \
  bind(api.member, #function)
  MX_BIND(get_version, ncclGetVersion);
  MX_BIND(get_unique_id, ncclGetUniqueId);
  MX_BIND(comm_init_rank, ncclCommInitRank);
  MX_BIND(comm_destroy, ncclCommDestroy);
  MX_BIND(comm_abort, ncclCommAbort);
  MX_BIND(comm_get_async_error, ncclCommGetAsyncError);
  MX_BIND(error_string, ncclGetErrorString);
  MX_BIND(reduce_scatter, ncclReduceScatter);
  MX_BIND(all_gather, ncclAllGather);
  MX_BIND(all_reduce, ncclAllReduce);
#undef MX_BIND
  return missing;
}

}  // namespace

std::vector<std::string> nccl_candidates() {
  std::vector<std::string> candidates{library_name()};
#ifdef MX_CUDA_TOOLKIT_LIBRARY_DIR
  candidates.push_back(std::string(MX_CUDA_TOOLKIT_LIBRARY_DIR) + "/" + library_name());
#endif
  return candidates;
}

std::optional<Nccl> open_nccl(const std::vector<std::string>& candidates, std::string* error) {
  Nccl api;
  std::string reasons;
  if (open_first_library(
          candidates, [&api](void* library) { return bind_functions(library, api); }, &reasons)) {
    return api;
  }
  if (error != nullptr) {
    *error = "cannot load NCCL (" + library_name() +
             "): " + (reasons.empty() ? "no place to look for it" : reasons);
  }
  return std::nullopt;
}

const Nccl* nccl(std::string* error) {
  struct Loaded {
    std::optional<Nccl> api;
    std::string error;
  };
  static const Loaded loaded = [] {
    Loaded l;
    l.api = open_nccl(nccl_candidates(), &l.error);
    return l;
  }();
  if (!loaded.api && error != nullptr) *error = loaded.error;
  return loaded.api ? &*loaded.api : nullptr;
}

}  // namespace mx::cuda
