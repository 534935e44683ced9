// A minimal fork-join loop over index ranges, for splitting blocks across threads.
#pragma once

#include <cstdint>
#include <functional>

namespace mx::cpu {

// Calls fn(begin, end) on disjoint ranges covering [0, n), on up to `threads` threads (0: all
// hardware threads). Range boundaries are multiples of `align` (except n itself).
void parallel_for(int64_t n, int64_t align, int threads,
                  const std::function<void(int64_t, int64_t)>& fn);

int resolve_thread_count(int requested);

}  // namespace mx::cpu
