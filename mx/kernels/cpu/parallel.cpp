#include "mx/kernels/cpu/parallel.h"

#include <algorithm>
#include <thread>
#include <vector>

namespace mx::cpu {

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
  const int64_t per_worker = (units + workers - 1) / workers;
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t begin = std::min(n, w * per_worker * align);
    const int64_t end = std::min(n, (w + 1) * per_worker * align);
    if (begin < end) pool.emplace_back(fn, begin, end);
  }
  fn(0, std::min(n, per_worker * align));
  for (std::thread& t : pool) t.join();
}

}  // namespace mx::cpu
