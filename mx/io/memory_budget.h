// How much memory this process may still take. Commands compare what a job needs with it before
// allocating, so that a size the machine cannot hold is refused with a clear message rather than
// ending in std::bad_alloc, or in the kernel's out-of-memory killer once Linux, which promises
// memory it does not have, is asked to deliver it.
#pragma once

#include <cstdint>
#include <string>

namespace mx::io {

// The smaller of the memory the system reports available (MemAvailable) and what the address-
// space limit (ulimit -v) leaves to this process. INT64_MAX when neither can be read.
int64_t available_memory_bytes();

// The most memory this process has held resident so far (getrusage's ru_maxrss); 0 if unknown.
int64_t peak_resident_bytes();
// The memory this process holds resident now (/proc/self/statm); 0 if unknown.
int64_t resident_bytes();

// Gives the whole pages inside [p, p + bytes) of this process's heap back to the system
// (madvise MADV_DONTNEED): they no longer count as resident, and read as zeros if touched
// again. For memory whose contents will never be read again but cannot be freed on its own.
void release_pages(void* p, int64_t bytes);

// "1.5 GB", "320 MB": sizes in messages.
std::string format_bytes(double bytes);

// "" when `bytes` fits in available_memory_bytes(), else "WHAT needs X, more than the Y
// available".
std::string check_memory(double bytes, const std::string& what);

}  // namespace mx::io
