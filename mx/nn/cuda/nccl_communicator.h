// A Communicator among GPUs through NCCL (opened at run time, mx/kernels/cuda/nccl_loader.h):
// one rank per process and GPU, each collective queued on the rank's CUDA backend stream, behind
// the ops that made its input.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "mx/nn/backend.h"
#include "mx/nn/communicator.h"

namespace mx::nn {

// What every rank needs to join one communicator: rank 0 makes it and hands it to the others
// (through a file or a pipe).
struct NcclUniqueId {
  std::array<char, 128> bytes{};
};
std::string make_nccl_unique_id(NcclUniqueId* out);

// Rank `rank` of `world`, on `backend` (a CUDA backend, make_cuda_backend, which must outlive the
// communicator). Blocks until every rank has joined. "" or the reason (no NCCL, not a CUDA
// backend, NCCL's own error).
std::string make_nccl_communicator(Backend& backend, const NcclUniqueId& id, int rank, int world,
                                   std::unique_ptr<Communicator>* out);

}  // namespace mx::nn
