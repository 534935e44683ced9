#include "mx/kernels/cuda/nccl_loader.h"

#include <type_traits>

#include "mx/kernels/cuda/library_loader.h"

namespace mx::cuda {
namespace {

std::string library_name() {
  return "libnccl.so." + std::to_string(NCCL_MAJOR);
}

std::string bind_functions(void* library, Nccl& api) {
  std::string missing;
#define MX_BIND(member, function)                                           \
  static_assert(std::is_same_v<decltype(api.member), decltype(&function)>); \
  bind_symbol(library, api.member, #function, &missing)
  MX_BIND(get_version, ncclGetVersion);
  MX_BIND(get_unique_id, ncclGetUniqueId);
  MX_BIND(comm_init_rank, ncclCommInitRank);
  MX_BIND(comm_destroy, ncclCommDestroy);
  MX_BIND(comm_abort, ncclCommAbort);
  MX_BIND(comm_get_async_error, ncclCommGetAsyncError);
  MX_BIND(error_string, ncclGetErrorString);
  MX_BIND(reduce_scatter, ncclReduceScatter);
  MX_BIND(reduce, ncclReduce);
  MX_BIND(all_gather, ncclAllGather);
  MX_BIND(all_reduce, ncclAllReduce);
#undef MX_BIND
  return missing;
}

}  // namespace

std::vector<std::string> nccl_candidates() {
  return toolkit_library_candidates(library_name());
}

std::optional<Nccl> open_nccl(const std::vector<std::string>& candidates, std::string* error) {
  return open_api<Nccl>("NCCL", library_name(), candidates, bind_functions, error);
}

const Nccl* nccl(std::string* error) {
  return open_once<Nccl>([](std::string* e) { return open_nccl(nccl_candidates(), e); }, error);
}

}  // namespace mx::cuda
