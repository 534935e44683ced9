#include "mx/nn/thread_communicator.h"

#include <cstring>

namespace mx::nn {

class ThreadMember final : public Communicator {
 public:
  ThreadMember(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.world_; }

  // Each collective: post this rank's buffer, wait for every rank, read the others' buffers,
  // wait until every rank has read, then write this rank's result (which may overwrite what
  // it posted).
  void reduce_scatter_sum(Buf send, Buf recv, int64_t count) override {
    if (failed_) return;
    if (send.type != BufType::kF32 || recv.type != BufType::kF32) {
      stop("reduce-scatter takes float32 buffers");
      return;
    }
    if (!post(send.p)) return;
    const std::vector<float> sum = sum_posted<float>(rank_ * count, count);
    if (!wait()) return;
    std::memcpy(recv.p, sum.data(), sum.size() * sizeof(float));
  }

  void reduce_sum(Buf send, Buf recv, int64_t count, int root) override {
    if (failed_) return;
    if (send.type != BufType::kF32 || recv.type != BufType::kF32) {
      stop("reduce takes float32 buffers");
      return;
    }
    if (!post(send.p)) return;
    std::vector<float> sum;
    if (rank_ == root) sum = sum_posted<float>(0, count);
    if (!wait()) return;
    if (rank_ == root) std::memcpy(recv.p, sum.data(), sum.size() * sizeof(float));
  }

  // Each reduce_sum has finished on return.
  void finish_reductions() override {}

  void all_gather(Buf send, Buf recv, int64_t count) override {
    if (failed_) return;
    if (send.type != recv.type) {
      stop("all-gather takes buffers of one type");
      return;
    }
    const int64_t bytes = count * buf_type_bytes(send.type);
    if (!post(send.p)) return;
    std::vector<char> gathered(static_cast<size_t>(bytes * size()));
    for (int r = 0; r < size(); ++r) {
      std::memcpy(gathered.data() + r * bytes, group_.posted_[size_t(r)], size_t(bytes));
    }
    if (!wait()) return;
    std::memcpy(recv.p, gathered.data(), gathered.size());
  }

  void all_reduce_sum(double* values, int64_t n) override {
    if (failed_) return;
    if (!post(values)) return;
    const std::vector<double> sum = sum_posted<double>(0, n);
    if (!wait()) return;
    std::memcpy(values, sum.data(), sum.size() * sizeof(double));
  }

  std::string take_error() override {
    std::string e;
    e.swap(error_);
    return e;
  }

  void abort(const std::string& why) override { group_.abort(rank_, why); }

 private:
  bool post(const void* p) {
    group_.posted_[size_t(rank_)] = p;
    return wait();
  }
  // Elements [offset, offset + count) of every rank's posted buffer, summed in rank order: the
  // one order every reduction here takes, so that they give the same bits.
  template <class T>
  std::vector<T> sum_posted(int64_t offset, int64_t count) const {
    std::vector<T> sum(static_cast<size_t>(count), T(0));
    for (int r = 0; r < size(); ++r) {
      const T* part = static_cast<const T*>(group_.posted_[size_t(r)]) + offset;
      for (int64_t i = 0; i < count; ++i) sum[size_t(i)] += part[i];
    }
    return sum;
  }
  bool wait() {
    if (group_.arrive_and_wait()) return true;
    fail(group_.abort_reason());
    return false;
  }
  // A call this rank cannot make: the other ranks would wait for it forever, so the group
  // stops.
  void stop(const std::string& why) {
    group_.abort(rank_, why);
    fail(group_.abort_reason());
  }
  void fail(const std::string& why) {
    if (!failed_) error_ = why;
    failed_ = true;
  }

  ThreadGroup& group_;
  int rank_;
  std::string error_;    // the first error, until take_error
  bool failed_ = false;  // once set, every operation returns at once
};

ThreadGroup::ThreadGroup(int world) : world_(world), posted_(size_t(world), nullptr) {}

std::unique_ptr<Communicator> ThreadGroup::member(int rank) {
  return std::make_unique<ThreadMember>(*this, rank);
}

bool ThreadGroup::arrive_and_wait() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!aborted_.empty()) return false;
  const uint64_t generation = generation_;
  if (++arrived_ == world_) {
    arrived_ = 0;
    ++generation_;
    arrived_cv_.notify_all();
    return true;
  }
  arrived_cv_.wait(lock, [&] { return generation_ != generation || !aborted_.empty(); });
  return generation_ != generation;
}

void ThreadGroup::abort(int rank, const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (aborted_.empty()) aborted_ = "rank " + std::to_string(rank) + " stopped: " + why;
  arrived_cv_.notify_all();
}

std::string ThreadGroup::abort_reason() {
  std::lock_guard<std::mutex> lock(mutex_);
  return aborted_;
}

}  // namespace mx::nn
