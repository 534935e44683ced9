// NCCL, opened on first use instead of linked: most runs use one GPU or none, and NCCL's
// library is large (the GPU hosts carry their own). The pointers take their types from
// <nccl.h>'s declarations, so a signature that changes with the toolkit is a compile error.
#pragma once

#include <nccl.h>

#include <optional>
#include <string>
#include <vector>

namespace mx::cuda {

// The NCCL functions mxkit calls.
struct Nccl {
  decltype(&ncclGetVersion) get_version = nullptr;
  decltype(&ncclGetUniqueId) get_unique_id = nullptr;
  decltype(&ncclCommInitRank) comm_init_rank = nullptr;
  decltype(&ncclCommDestroy) comm_destroy = nullptr;
  decltype(&ncclCommAbort) comm_abort = nullptr;
  decltype(&ncclCommGetAsyncError) comm_get_async_error = nullptr;
  decltype(&ncclGetErrorString) error_string = nullptr;
  decltype(&ncclReduceScatter) reduce_scatter = nullptr;
  decltype(&ncclReduce) reduce = nullptr;
  decltype(&ncclAllGather) all_gather = nullptr;
  decltype(&ncclAllReduce) all_reduce = nullptr;
};

// The places tried, in order: "libnccl.so.<major>" of the headers compiled against, for the
// system's search path, then the same file in the toolkit's library folder.
std::vector<std::string> nccl_candidates();

// Opens the first of `candidates` that loads and has every function; nullopt with a one-line
// reason in *error otherwise. The library stays open for the life of the process.
std::optional<Nccl> open_nccl(const std::vector<std::string>& candidates, std::string* error);

// NCCL from nccl_candidates(), opened once per process (safe from any thread); nullptr with the
// reason in *error when it cannot be opened.
const Nccl* nccl(std::string* error);

}  // namespace mx::cuda
