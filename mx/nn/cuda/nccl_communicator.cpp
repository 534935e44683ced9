#include "mx/nn/cuda/nccl_communicator.h"

#include <cuda_runtime.h>

#include <cstring>

#include "mx/kernels/cuda/nccl_loader.h"
#include "mx/nn/cuda/cuda_backend.h"

namespace mx::nn {
namespace {

static_assert(sizeof(NcclUniqueId::bytes) == sizeof(ncclUniqueId));

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const mx::cuda::Nccl& api, ncclComm_t comm, cudaStream_t stream, int rank,
                   int world)
      : api_(api), comm_(comm), stream_(stream), rank_(rank), world_(world) {}
  ~NcclCommunicator() override {
    if (aborted_) {
      // abort() has released the communicator already.
    } else if (failed_) {
      api_.comm_abort(comm_);
    } else {
      cudaStreamSynchronize(stream_);
      if (side_ != nullptr) cudaStreamSynchronize(side_);
      api_.comm_destroy(comm_);
    }
    cudaFree(staged_);
    if (side_ != nullptr) {
      cudaEventDestroy(queued_);
      cudaEventDestroy(reduced_);
      cudaStreamDestroy(side_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return world_; }

  // On the side stream, after the backend's queued work: the backward's later layers run
  // beside it.
  void reduce_sum(Buf send, Buf recv, int64_t count, int root) override {
    if (failed_) return;
    if (send.type != BufType::kF32 || recv.type != BufType::kF32) {
      fail("reduce takes float32 buffers");
      return;
    }
    if (!side_stream() || !cuda_ok(cudaEventRecord(queued_, stream_)) ||
        !cuda_ok(cudaStreamWaitEvent(side_, queued_, 0))) {
      return;
    }
    side_pending_ = true;
    check(api_.reduce(send.p, recv.p, size_t(count), ncclFloat, ncclSum, root, comm_, side_),
          "reduce");
  }

  void finish_reductions() override {
    if (failed_ || !side_pending_) return;
    side_pending_ = false;
    if (cuda_ok(cudaEventRecord(reduced_, side_)))
      cuda_ok(cudaStreamWaitEvent(stream_, reduced_, 0));
  }

  void reduce_scatter_sum(Buf send, Buf recv, int64_t count) override {
    finish_reductions();
    if (failed_) return;
    if (send.type != BufType::kF32 || recv.type != BufType::kF32) {
      fail("reduce-scatter takes float32 buffers");
      return;
    }
    check(api_.reduce_scatter(send.p, recv.p, size_t(count), ncclFloat, ncclSum, comm_, stream_),
          "reduce-scatter");
  }

  void all_gather(Buf send, Buf recv, int64_t count) override {
    finish_reductions();
    if (failed_) return;
    if (send.type != recv.type) {
      fail("all-gather takes buffers of one type");
      return;
    }
    check(api_.all_gather(send.p, recv.p, size_t(count), nccl_type(send.type), comm_, stream_),
          "all-gather");
  }

  void all_reduce_sum(double* values, int64_t n) override {
    finish_reductions();
    if (failed_) return;
    const size_t bytes = size_t(n) * sizeof(double);
    if (bytes > staged_bytes_) {
      cudaFree(staged_);
      staged_ = nullptr, staged_bytes_ = 0;
      if (cudaMalloc(&staged_, bytes) != cudaSuccess) {
        cudaGetLastError();
        fail("no GPU memory for an all-reduce");
        return;
      }
      staged_bytes_ = bytes;
    }
    if (!cuda_ok(cudaMemcpyAsync(staged_, values, bytes, cudaMemcpyHostToDevice, stream_)) ||
        !check(api_.all_reduce(staged_, staged_, size_t(n), ncclDouble, ncclSum, comm_, stream_),
               "all-reduce") ||
        !cuda_ok(cudaMemcpyAsync(values, staged_, bytes, cudaMemcpyDeviceToHost, stream_)) ||
        !cuda_ok(cudaStreamSynchronize(stream_))) {
      return;
    }
    ncclResult_t async = ncclSuccess;
    if (api_.comm_get_async_error(comm_, &async) == ncclSuccess) check(async, "a collective");
  }

  std::string take_error() override {
    if (!failed_) {
      ncclResult_t async = ncclSuccess;
      if (api_.comm_get_async_error(comm_, &async) == ncclSuccess) check(async, "a collective");
    }
    std::string e;
    e.swap(error_);
    return e;
  }

  void abort(const std::string& why) override {
    fail(why);
    if (!aborted_) api_.comm_abort(comm_);
    aborted_ = true;
  }

 private:
  static ncclDataType_t nccl_type(BufType t) {
    switch (t) {
      case BufType::kF32:
        return ncclFloat;
      case BufType::kBF16:
        return ncclBfloat16;
      case BufType::kU32:
        return ncclUint32;
      case BufType::kU8:
        return ncclUint8;
    }
    return ncclUint8;
  }
  bool check(ncclResult_t r, const char* what) {
    if (r == ncclSuccess || r == ncclInProgress) return true;
    fail(std::string("NCCL ") + what + ": " + api_.error_string(r));
    return false;
  }
  bool cuda_ok(cudaError_t e) {
    if (e == cudaSuccess) return true;
    cudaGetLastError();
    fail(std::string("CUDA: ") + cudaGetErrorString(e));
    return false;
  }
  // reduce_sum's stream and its two events, made at its first call.
  bool side_stream() {
    if (side_ != nullptr) return true;
    cudaStream_t side = nullptr;
    cudaEvent_t queued = nullptr, reduced = nullptr;
    if (cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking) != cudaSuccess ||
        cudaEventCreateWithFlags(&queued, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventCreateWithFlags(&reduced, cudaEventDisableTiming) != cudaSuccess) {
      const cudaError_t e = cudaGetLastError();
      if (reduced != nullptr) cudaEventDestroy(reduced);
      if (queued != nullptr) cudaEventDestroy(queued);
      if (side != nullptr) cudaStreamDestroy(side);
      fail(std::string("CUDA: no stream for the reductions: ") + cudaGetErrorString(e));
      return false;
    }
    side_ = side, queued_ = queued, reduced_ = reduced;
    return true;
  }
  void fail(const std::string& why) {
    if (!failed_) error_ = "rank " + std::to_string(rank_) + ": " + why;
    failed_ = true;
  }

  const mx::cuda::Nccl& api_;
  ncclComm_t comm_;
  cudaStream_t stream_;
  int rank_, world_;
  cudaStream_t side_ = nullptr;  // reduce_sum's
  cudaEvent_t queued_ = nullptr, reduced_ = nullptr;
  bool side_pending_ = false;  // reduce_sum work that the backend's stream has not yet waited for
  void* staged_ = nullptr;     // all_reduce_sum's host values, staged on the device
  size_t staged_bytes_ = 0;
  std::string error_;
  bool failed_ = false, aborted_ = false;
};

}  // namespace

std::string make_nccl_unique_id(NcclUniqueId* out) {
  std::string error;
  const mx::cuda::Nccl* api = mx::cuda::nccl(&error);
  if (api == nullptr) return error;
  ncclUniqueId id;
  if (ncclResult_t r = api->get_unique_id(&id); r != ncclSuccess) {
    return std::string("NCCL: cannot make a unique id: ") + api->error_string(r);
  }
  std::memcpy(out->bytes.data(), &id, sizeof(id));
  return "";
}

std::string make_nccl_communicator(Backend& backend, const NcclUniqueId& id, int rank, int world,
                                   std::unique_ptr<Communicator>* out) {
  if (world < 1 || rank < 0 || rank >= world) {
    return "rank " + std::to_string(rank) + " is not among the " + std::to_string(world) + " ranks";
  }
  void* stream = cuda_backend_stream(backend);
  if (stream == nullptr) return "NCCL runs between GPUs: the backend is not a CUDA backend";
  std::string error;
  const mx::cuda::Nccl* api = mx::cuda::nccl(&error);
  if (api == nullptr) return error;
  ncclUniqueId nccl_id;
  std::memcpy(&nccl_id, id.bytes.data(), sizeof(nccl_id));
  ncclComm_t comm = nullptr;
  if (ncclResult_t r = api->comm_init_rank(&comm, world, nccl_id, rank); r != ncclSuccess) {
    return "rank " + std::to_string(rank) +
           ": NCCL cannot join the communicator: " + api->error_string(r);
  }
  *out = std::make_unique<NcclCommunicator>(*api, comm, static_cast<cudaStream_t>(stream), rank,
                                            world);
  return "";
}

}  // namespace mx::nn
