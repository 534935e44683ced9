// Collective operations among the ranks of a data-parallel run (data_parallel.h), on buffers of
// the ranks' backends: NCCL between GPUs, and ThreadGroup (thread_communicator.h) between the
// threads of one process, which stands in for it where there is one device or none. Every rank
// calls the same operations in the same order.
#pragma once

#include <cstdint>
#include <string>

#include "mx/nn/buf.h"

namespace mx::nn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // recv[count] := the sum over the ranks r of r's send[rank() * count, + count); send holds
  // size() * count float32 values. recv may be that part of this rank's own send.
  virtual void reduce_scatter_sum(Buf send, Buf recv, int64_t count) = 0;
  // On rank `root`, recv[count] := the sum over the ranks of their send[count]; the other
  // ranks' recv is not touched. It sums in the order reduce_scatter_sum does, so that the
  // gradients of a step reduced in pieces as the backward produces them are the bits of one
  // reduce-scatter. On NCCL it runs on a stream of its own, after the work already queued on
  // the backend's, beside the work queued after it; every other operation waits for it.
  virtual void reduce_sum(Buf send, Buf recv, int64_t count, int root) = 0;
  // The backend's work queued from now on sees every reduce_sum's result.
  virtual void finish_reductions() = 0;
  // recv[size() * count] := rank r's send[count] at r * count, for every r. send may be this
  // rank's own part of recv.
  virtual void all_gather(Buf send, Buf recv, int64_t count) = 0;
  // values[n], on the host, := their sum over the ranks.
  virtual void all_reduce_sum(double* values, int64_t n) = 0;

  // The first error since the last call, naming the rank it came from; "" when none. After an
  // error, every later operation returns at once without doing anything.
  virtual std::string take_error() = 0;
  // This rank stops: every rank inside a collective, or entering one later, returns from it
  // with an error naming this rank and `why`.
  virtual void abort(const std::string& why) = 0;
};

}  // namespace mx::nn
