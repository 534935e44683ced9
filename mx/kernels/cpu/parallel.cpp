#include "mx/kernels/cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace mx::cpu {
namespace {

thread_local bool t_in_worker = false;

void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls `ready` for up to about 50 microseconds; true once it holds. Loops follow each other
// within microseconds in a training step, and a wake-up through the kernel (a futex call on each
// side) costs more than many of them, so the threads wait briefly in user space first.
template <class Ready>
bool spin_until(Ready ready) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      spin_pause();
    }
    if (std::chrono::steady_clock::now() > give_up) return ready();
  }
}

// Threads that live as long as the process, so that a parallel loop costs a wake-up instead
// of creating and joining threads: a training step of a small model runs about a thousand
// loops, and thread creation was a large part of its time.
//
// One loop runs at a time. A loop started while another runs (from a worker, or from a second
// caller thread) is refused and its caller runs the chunks itself; results do not change,
// because the chunks are the same whoever runs them.
class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool pool;
    return pool;
  }

  // Runs chunk(0) .. chunk(count - 1) on the calling thread and the workers; false (having run
  // nothing) when the pool is busy.
  bool run(int64_t count, const std::function<void(int64_t)>& chunk) {
    if (t_in_worker || threads_.empty()) return false;
    std::unique_lock<std::mutex> dispatch(dispatch_, std::try_to_lock);
    if (!dispatch.owns_lock()) return false;
    bool wake = false;
    spin_until([&] { return active_.load(std::memory_order_acquire) == 0; });
    {
      std::unique_lock<std::mutex> lock(m_);
      // No worker may still be inside the previous loop's drain() when its state is replaced.
      done_.wait(lock, [&] { return active_.load() == 0; });
      chunk_ = &chunk;
      count_ = count;
      next_.store(0);
      finished_.store(0);
      ++generation_;
      posted_.store(generation_, std::memory_order_release);
      wake = sleepers_ > 0;
    }
    if (wake) wake_.notify_all();
    const int64_t done = drain();
    finished_.fetch_add(done, std::memory_order_acq_rel);
    if (!spin_until([&] { return finished_.load(std::memory_order_acquire) == count; })) {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [&] { return finished_.load() == count; });
    }
    return true;
  }

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

 private:
  WorkerPool() {
    const unsigned n = std::max(1u, std::thread::hardware_concurrency()) - 1;
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }

  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
      stopping_.store(true);
    }
    wake_.notify_all();
    for (std::thread& t : threads_) t.join();
  }

  // Runs chunks until none is left; returns how many this thread ran.
  int64_t drain() {
    int64_t done = 0;
    for (int64_t i = next_.fetch_add(1); i < count_; i = next_.fetch_add(1)) {
      (*chunk_)(i);
      ++done;
    }
    return done;
  }

  void work() {
    t_in_worker = true;
    uint64_t seen = 0;
    // Only a worker that ran part of the last loop polls for the next: on a machine with many
    // more cores than a loop has chunks, the others sleep instead of burning their cores.
    bool ran_chunks = false;
    for (;;) {
      if (ran_chunks) {
        spin_until([&] {
          return posted_.load(std::memory_order_acquire) != seen ||
                 stopping_.load(std::memory_order_relaxed);
        });
      }
      std::unique_lock<std::mutex> lock(m_);
      ++sleepers_;
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      --sleepers_;
      if (stop_) return;
      seen = generation_;
      active_.fetch_add(1);
      lock.unlock();
      const int64_t done = drain();
      ran_chunks = done > 0;
      finished_.fetch_add(done, std::memory_order_acq_rel);
      lock.lock();
      active_.fetch_sub(1);
      lock.unlock();
      done_.notify_all();
    }
  }

  std::mutex dispatch_;  // held by the thread running a loop
  std::mutex m_;  // guards the loop's state, generation_, sleepers_, stop_ and changes of active_
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;
  const std::function<void(int64_t)>* chunk_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int64_t> finished_{0};  // chunks run in this loop
  std::atomic<int> active_{0};        // workers inside drain(); changed under m_
  uint64_t generation_ = 0;
  std::atomic<uint64_t> posted_{0};  // generation_, for workers polling without the lock
  int sleepers_ = 0;                 // workers in wake_.wait
  bool stop_ = false;
  std::atomic<bool> stopping_{false};
};

}  // namespace

int resolve_thread_count(int requested) {
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

void parallel_for(int64_t n, int64_t align, int threads,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t units = (n + align - 1) / align;
  const int64_t workers = std::min<int64_t>(resolve_thread_count(threads), units);
  if (workers <= 1) {
    fn(0, n);
    return;
  }
  // The ranges depend on `workers` only, never on which thread runs them.
  const int64_t per_worker = (units + workers - 1) / workers;
  const std::function<void(int64_t)> chunk = [&](int64_t w) {
    const int64_t begin = std::min(n, w * per_worker * align);
    const int64_t end = std::min(n, (w + 1) * per_worker * align);
    if (begin < end) fn(begin, end);
  };
  if (!WorkerPool::instance().run(workers, chunk)) {
    for (int64_t w = 0; w < workers; ++w) chunk(w);
  }
}

}  // namespace mx::cpu
